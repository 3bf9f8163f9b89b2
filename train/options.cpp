#include "train/options.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "train/flags.h"
#include "train/method.h"

namespace switchlora {

std::string read_method(Flags& f) {
  std::string names;
  for (const MethodInfo& m : all_methods()) names += (names.empty() ? "" : " | ") + std::string(m.name);
  std::string method = f.get_string("method", "full", names);
  const bool use_lora = f.get_bool("use_lora", "= --method lora: freeze W and train LoRA adapters A, B on q,k,v,o,gate,up,down");
  const bool switch_lora = f.get_bool("switch_lora", "= --method switchlora: switch adapter vectors with candidates");
  // ReLoRA's repo spells it --use_peft --relora N; here --use_lora --relora N.
  // GaLore's repo spells it --optimizer galore_adamw.
  const std::string optimizer = f.get_string("optimizer", "adamw", "adamw | galore_adamw (= --method galore)");
  if (optimizer != "adamw" && optimizer != "galore_adamw")
    throw Error("--optimizer must be adamw or galore_adamw, got \"" + optimizer + "\"");
  // The authors' LoRA baseline is their SwitchLoRA code without pools or switching.
  const bool no_candidates = f.get_bool("force_disable_candidates", "no candidates, no switching: LoRA (the authors' spelling)");
  std::string spelled = switch_lora && !no_candidates ? "switchlora"
                        : use_lora || switch_lora   ? (f.has("relora") ? "relora" : "lora")
                                                    : "";
  if (optimizer == "galore_adamw") {
    if (!spelled.empty())
      throw Error("--optimizer galore_adamw trains full-rank weights: it cannot be combined with --" +
                  std::string(switch_lora ? "switch_lora" : "use_lora"));
    spelled = "galore";
  }
  if (!spelled.empty()) {
    if (f.has("method") && method != spelled)
      throw Error("--method " + method + " contradicts --" +
                  (switch_lora ? "switch_lora" : use_lora ? "use_lora" : "optimizer galore_adamw"));
    method = spelled;
  }
  method_info(method);  // throws naming --method for an unknown name
  return method;
}

TrainOptions parse_train_flags(Flags& f) {
  TrainOptions o;
  o.model_config = f.get_string("model_config", "", "model config JSON (HF LLaMA fields), e.g. configs/llama_9m.json");
  o.data = f.get_string("data", "data/brown", "prepared data directory (tokenizer + *_train_*.bin, *_val_*.bin)");
  o.vocab_size = f.get_int("vocab_size", 0, "vocabulary size; 0 = the tokenizer's");
  o.batch_size = f.get_int("batch_size", 8, "sequences per micro-batch per rank");
  o.total_batch_size = f.get_int("total_batch_size", 0, "sequences per optimizer step (all ranks); 0 = batch_size x ranks");
  o.gradient_accumulation = f.get_int(
      "gradient_accumulation", 0, "micro-batches per optimizer step (the authors' spelling; sets --total_batch_size)");
  if (o.gradient_accumulation < 0)
    throw Error("--gradient_accumulation must be >= 1, got " + std::to_string(o.gradient_accumulation));
  o.max_length = f.get_int("max_length", 256, "sequence length T");
  o.lr = f.get_float("lr", 1e-3f, "peak learning rate");
  o.non_adapter_lr = f.get_float("non_adapter_lr", 0.0f,
                                 "peak learning rate of what no adapter covers (embeddings, norms, lm_head), on "
                                 "--lr's schedule; 0: --lr");
  o.warmup_steps = f.get_int("warmup_steps", 0, "linear warm-up steps");
  o.scheduler = f.get_string("scheduler", "cosine",
                             "constant | linear | cosine | cosine_with_min_lr (max(m, cosine), the authors') | "
                             "cosine_to_min_lr (m + (1-m) cosine) | cosine_restarts");
  o.min_lr_ratio = f.get_float("min_lr_ratio", 0.1f, "m: floor of cosine_with_min_lr, cosine_to_min_lr and cosine_restarts, as a fraction of --lr");
  o.cycle_length = f.get_int("cycle_length", 0, "cosine_restarts: steps between restarts (ReLoRA: = --relora)");
  o.restart_warmup_steps = f.get_int("restart_warmup_steps", 0, "cosine_restarts: linear re-warm-up steps after each restart");
  o.num_training_steps = f.get_int("num_training_steps", 1000, "optimizer steps");
  o.adam_beta1 = f.get_float("adam_beta1", 0.9f, "AdamW beta1");
  o.adam_beta2 = f.get_float("adam_beta2", 0.999f, "AdamW beta2");
  o.adam_eps = f.get_float("adam_eps", 1e-8f, "AdamW epsilon");
  o.weight_decay = f.get_float("weight_decay", 0.0f, "AdamW decoupled weight decay");
  o.clip_grad_norm = f.get_float("clip_grad_norm", 1.0f, "global gradient-norm clip; 0 = off");
  o.error_if_nonfinite = f.get_bool("error_if_nonfinite",
                                    "stop at the first non-finite loss or gradient norm (default: skip that step's "
                                    "switch and update, and stop once more than 5% of the steps were skipped)");
  o.eval_every = f.get_int("eval_every", 100, "evaluate on the validation split every N steps; 0 = only at the end");
  o.max_eval_batches = f.get_int("max_eval_batches", 0, "cap on validation micro-batches; 0 = the whole split");
  o.save_every = f.get_int("save_every", 0, "checkpoint every N steps (always at the end); 0 = only at the end");
  o.save_dir = f.get_string("save_dir", "runs/default", "where checkpoints and metrics.jsonl go");
  o.keep_checkpoints = f.get_int("keep_checkpoints", 2, "keep the newest N checkpoints; 0 = all");
  o.save_initial = f.get_bool("save_initial", "also save the model before step 0 as SAVE_DIR/initial.bin (inspect's baseline)");
  o.seed = f.get_int("seed", 0, "seed for init, data order and switching");
  o.resume = f.get_string("resume", "", "continue from this checkpoint (a file, or a run directory: its newest)");
  const std::string resume_from = f.get_string("resume_from", "", "= --resume (the authors' spelling)");
  if (!resume_from.empty()) {
    if (!o.resume.empty() && o.resume != resume_from)
      throw Error("--resume " + o.resume + " and --resume_from " + resume_from + " disagree: give one");
    o.resume = resume_from;
  }
  o.autoresume = f.get_bool("autoresume", "continue from the newest checkpoint in --save_dir when there is one");
  o.warmed_up_model = f.get_string("warmed_up_model", "",
                                   "start from these weights: a full-rank checkpoint or run directory, or an HF "
                                   "safetensors directory of the same shape (optimizer and step start fresh)");
  o.check_sync_every = f.get_int("check_sync_every", 0,
                                 "with mpirun: abort if any rank's parameters differ, checked every N steps; 0 = only at start");
  o.device = f.get_string("device", "auto", "cpu | cuda | auto (cuda when a GPU is visible)");
  o.dtype = f.get_string("dtype", "fp32", "fp32 | bf16: GEMM inputs in bf16 on the GPU (fp32 masters, state, losses)");
  if (o.dtype == "bfloat16") o.dtype = "bf16";  // the authors' (PyTorch's) spellings
  if (o.dtype == "float32") o.dtype = "fp32";
  o.tf32 = f.get_bool("tf32", "with --dtype fp32 on the GPU: TF32 tensor cores for the GEMMs");

  o.method = read_method(f);
  const MethodInfo& chosen = method_info(o.method);
  // The adapters' flags, shared by every method that has adapters.
  o.lora.use_lora = chosen.adapters;
  o.lora.lora_rank = f.get_int("lora_rank", 128, "LoRA rank r");
  o.lora.lora_alpha = f.get_float("lora_alpha", 1.0f, "LoRA scale s = lora_alpha / r");
  o.lora.init_lora_type = f.get_string("init_lora_type", "switchlora", "switchlora | origin_lora");
  o.lora.lora_dropout = f.get_float("lora_dropout", 0.0f, "dropout on each adapter's input while training (ReLoRA's repo: 0.1)");
  if (!chosen.adapters)
    f.refuse({"lora_rank", "lora_alpha", "init_lora_type", "lora_dropout"}, "needs --use_lora or --switch_lora");
  for (const MethodInfo& m : all_methods())
    if (m.read_flags) m.read_flags(f, o, m.name == o.method);
  return o;
}

void resolve_total_batch_size(TrainOptions& o, int world) {
  const int from_accumulation = o.batch_size * std::max(1, o.gradient_accumulation) * world;
  if (o.gradient_accumulation > 0 && o.total_batch_size > 0 && o.total_batch_size != from_accumulation)
    throw Error("--total_batch_size " + std::to_string(o.total_batch_size) + " disagrees with --batch_size " +
                std::to_string(o.batch_size) + " x --gradient_accumulation " + std::to_string(o.gradient_accumulation) +
                " x " + std::to_string(world) + " rank(s) = " + std::to_string(from_accumulation));
  if (o.total_batch_size == 0) o.total_batch_size = from_accumulation;
}

void validate_train_options(const TrainOptions& o, int world) {
  if (o.batch_size <= 0) throw Error("--batch_size must be > 0, got " + std::to_string(o.batch_size));
  if (o.max_length <= 0) throw Error("--max_length must be > 0, got " + std::to_string(o.max_length));
  if (o.num_training_steps <= 0)
    throw Error("--num_training_steps must be > 0, got " + std::to_string(o.num_training_steps));
  if (o.total_batch_size % (o.batch_size * world) != 0)
    throw Error("--total_batch_size " + std::to_string(o.total_batch_size) +
                " must be a multiple of --batch_size " + std::to_string(o.batch_size) + " x " +
                std::to_string(world) + " rank(s)");
  if (!(o.lr > 0)) throw Error("--lr must be > 0");
  if (!(o.non_adapter_lr >= 0) || !std::isfinite(o.non_adapter_lr))
    throw Error("--non_adapter_lr must be >= 0 (0: --lr), got " + std::to_string(o.non_adapter_lr));
  if (o.eval_every < 0 || o.save_every < 0) throw Error("--eval_every and --save_every must be >= 0");
}

}  // namespace switchlora
