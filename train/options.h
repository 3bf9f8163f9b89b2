// Every flag of `switchlora train` (and `bench`, which trains too): a
// member has its flag's name (STYLE.md).
#pragma once
#include <string>

#include "model/llama.h"
#include "model/switchlora.h"
#include "train/galore_method.h"
#include "train/relora_method.h"

namespace switchlora {

class Flags;

struct TrainOptions {
  std::string model_config;
  std::string data;
  int vocab_size = 0;  // 0: the tokenizer's
  int batch_size = 8, total_batch_size = 0, max_length = 256;
  float lr = 1e-3f;
  float non_adapter_lr = 0.0f;  // embeddings, norms, lm_head; 0: lr
  int warmup_steps = 0, num_training_steps = 1000;
  std::string scheduler = "cosine";
  float min_lr_ratio = 0.1f;
  int cycle_length = 0, restart_warmup_steps = 0;  // --scheduler cosine_restarts
  float adam_beta1 = 0.9f, adam_beta2 = 0.999f, adam_eps = 1e-8f, weight_decay = 0.0f;
  float clip_grad_norm = 1.0f;
  int eval_every = 100, save_every = 0, max_eval_batches = 0, keep_checkpoints = 2;
  bool save_initial = false;
  bool error_if_nonfinite = false;
  int gradient_accumulation = 0;  // 0: from --total_batch_size
  std::string save_dir = "runs/default";
  int seed = 0;
  std::string resume;
  bool autoresume = false;
  std::string warmed_up_model;  // start from these weights (a checkpoint or an HF directory)
  int check_sync_every = 0;  // compare all parameters across ranks every N steps
  std::string device = "auto";  // cpu | cuda | auto (cuda when a GPU is visible)
  std::string dtype = "fp32";   // fp32 | bf16: how the GEMMs multiply (engine/backend.h)
  bool tf32 = false;            // TF32 tensor cores for --dtype fp32 GEMMs
  // The method (train/method.h) and its options.
  std::string method = "full";  // full | lora | switchlora | relora
  LoraOptions lora;             // every method with adapters
  SwitchOptions sw;             // switchlora
  ReLoraOptions relora;         // relora
  GaloreOptions galore;         // galore
};

// --method NAME, or the authors' spellings --use_lora and --switch_lora
// (train, bench and plan all read the method here).
std::string read_method(Flags& f);
// Reads every training flag (shared by train and bench), the method's too.
TrainOptions parse_train_flags(Flags& f);
// --total_batch_size when it was not given: batch_size x --gradient_accumulation
// (default 1) x world; throws if both are given and disagree.
void resolve_total_batch_size(TrainOptions& o, int world);
// Validates the flags that can be checked before building anything.
void validate_train_options(const TrainOptions& o, int world);

}  // namespace switchlora
