// The training step shared by `switchlora train` and `switchlora bench`:
// the model, its optimizer, SwitchLoRA's switcher and the communicator, and
// the exact per-step order of DESIGN §4:
//   forward, backward (x accumulation), all-reduce, clip grad norm,
//   switch (A then B, per layer), zero the frozen vectors' grads,
//   optimizer step (lr from the schedule).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "model/checkpoint.h"
#include "model/llama.h"
#include "model/switchlora.h"
#include "optim/adamw.h"
#include "optim/schedule.h"

namespace switchlora {

// Every flag of `switchlora train`; a member has its flag's name.
struct TrainOptions {
  std::string model_config;
  std::string data;
  int vocab_size = 0;  // 0: the tokenizer's
  int batch_size = 8, total_batch_size = 0, max_length = 256;
  float lr = 1e-3f;
  int warmup_steps = 0, num_training_steps = 1000;
  std::string scheduler = "cosine";
  float min_lr_ratio = 0.1f;
  float adam_beta1 = 0.9f, adam_beta2 = 0.999f, adam_eps = 1e-8f, weight_decay = 0.0f;
  float clip_grad_norm = 1.0f;
  int eval_every = 100, save_every = 0, max_eval_batches = 0, keep_checkpoints = 2;
  std::string save_dir = "runs/default";
  int seed = 0;
  std::string resume;
  bool autoresume = false;
  int check_sync_every = 0;  // compare all parameters across ranks every N steps
  std::string device = "auto";  // cpu | cuda | auto (cuda when a GPU is visible)
  std::string dtype = "fp32";   // fp32 | bf16: how the GEMMs multiply (engine/backend.h)
  bool tf32 = false;            // TF32 tensor cores for --dtype fp32 GEMMs
  LoraOptions lora;
  bool switch_lora = false;
  SwitchOptions sw;
};

struct StepStats {
  float loss = 0, lr = 0, grad_norm = 0;
  int switched = 0;
  float switch_interval = 0;
  size_t allreduce_bytes = 0;  // gradient bytes this rank all-reduced (0 alone)
};

// Fills inputs and targets (batch_size, max_length) with this rank's next micro-batch.
using BatchFn = std::function<void(int32_t* inputs, int32_t* targets)>;

class Trainer {
 public:
  // Everything lives on be; the Trainer sets its precision from opts.
  Trainer(const TrainOptions& opts, const LlamaConfig& config, Communicator& comm,
          Backend& be = cpu_backend());

  int grad_accum_steps() const { return accum_; }
  // One optimizer step over accum micro-batches; advances step().
  StepStats train_step(const BatchFn& next_batch);
  // Mean loss over `batches` micro-batches from next_batch, averaged over ranks.
  float evaluate(const BatchFn& next_batch, int batches);

  int step() const { return step_; }
  // Every rank throws the same CollectiveError, naming `when`, unless all
  // ranks hold bitwise the same trainable, frozen and candidate values.
  void check_in_sync(const std::string& when);
  // Model, optimizer, switcher and step into ck.meta/blobs (and back).
  void save_state(Checkpoint& ck) const;
  void load_state(const Checkpoint& ck, const std::string& path);

  TrainOptions opts;
  Llama model;
  std::unique_ptr<SwitchLora> switcher;  // only with --switch_lora
  std::unique_ptr<AdamW> optimizer;
  LrSchedule schedule;

 private:
  Communicator& comm_;
  int accum_ = 1;
  int step_ = 0;
  std::vector<int32_t> inputs_, targets_;
};

class Flags;
// Reads every training flag (shared by train and bench).
TrainOptions parse_train_flags(Flags& f);

// Validates the flags that can be checked before building anything.
void validate_train_options(const TrainOptions& o, int world);

// A model for inference (config, method and weights; no optimizer) from a
// checkpoint file, a run directory (its newest checkpoint) or an export
// directory (model/export.h). data_dir, when given, receives the run's --data.
std::unique_ptr<Llama> load_model(const std::string& checkpoint, std::string* data_dir = nullptr,
                                  Backend& be = cpu_backend());

}  // namespace switchlora
