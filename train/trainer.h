// The training step shared by `switchlora train` and `switchlora bench`, in
// the exact order of DESIGN §4, for any method (train/method.h):
//   forward, backward (x accumulation), all-reduce, clip grad norm,
//   method: before_update (SwitchLoRA's switch), update (AdamW),
//   after_update; then the next step.
// The Trainer names no method: full-rank, LoRA and SwitchLoRA all run here.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dist/communicator.h"
#include "model/checkpoint.h"
#include "model/llama.h"
#include "optim/schedule.h"
#include "train/method.h"
#include "train/options.h"

namespace switchlora {

struct StepStats {
  float loss = 0, lr = 0, grad_norm = 0;
  bool skipped = false;         // non-finite loss or gradient norm: no switch, no update
  size_t allreduce_bytes = 0;   // gradient bytes this rank all-reduced (0 alone)
  nlohmann::json method;        // the method's metrics (Method::metrics)
};

// Fills inputs and targets (batch_size, max_length) with this rank's next micro-batch.
using BatchFn = std::function<void(int32_t* inputs, int32_t* targets)>;

class Trainer {
 public:
  // Everything lives on be; the Trainer sets its precision from opts. With
  // opts.warmed_up_model the model's weights come from there (by name)
  // before the method initialises its adapters.
  Trainer(const TrainOptions& opts, const LlamaConfig& config, Communicator& comm,
          Backend& be = cpu_backend());

  int grad_accum_steps() const { return accum_; }
  // One optimizer step over accum micro-batches; advances step().
  StepStats train_step(const BatchFn& next_batch);
  // Mean loss over `batches` micro-batches from next_batch, averaged over ranks.
  float evaluate(const BatchFn& next_batch, int batches);

  int step() const { return step_; }
  // Steps whose loss or gradient norm was not finite, and so changed nothing
  // (the authors' rule: the switch and the update are skipped); saved in checkpoints.
  int skipped_steps() const { return skipped_; }
  // Every rank throws the same CollectiveError, naming `when`, unless all
  // ranks hold bitwise the same parameters and method state.
  void check_in_sync(const std::string& when);
  // Model (a blob per tensor, HF names), method and step into ck (and back).
  void save_state(Checkpoint& ck) const;
  void load_state(const Checkpoint& ck, const std::string& path);

  TrainOptions opts;
  Llama model;
  std::unique_ptr<Method> method;
  LrSchedule schedule;

 private:
  Communicator& comm_;
  int accum_ = 1;
  int step_ = 0, skipped_ = 0;
  std::vector<int32_t> inputs_, targets_;
};

// A model for inference (config, method and weights; no optimizer) from a
// checkpoint file, a run directory (its newest checkpoint) or an export
// directory (model/export.h). data_dir, when given, receives the run's --data.
std::unique_ptr<Llama> load_model(const std::string& checkpoint, std::string* data_dir = nullptr,
                                  Backend& be = cpu_backend());
// The model a loaded checkpoint holds (config, adapters' shape, every tensor).
std::unique_ptr<Llama> model_from_checkpoint(const Checkpoint& ck, const std::string& path,
                                             Backend& be = cpu_backend());

// Overwrites every weight of `model` that `source` names (a checkpoint file,
// a run directory or an HF safetensors directory of the same shape): W of
// each linear, embeddings, norms, lm_head. Adapters and optimizer state are
// not read. Errors name the tensor that is missing or has another shape.
void load_warm_start(Llama& model, const std::string& source);

}  // namespace switchlora
