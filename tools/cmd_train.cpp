// switchlora train: pre-train a LLaMA model, full-rank (default), with LoRA
// (--use_lora) or with SwitchLoRA (--switch_lora). Read this file top to
// bottom: flags, model and data, then the training loop.
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "data/file_io.h"
#include "data/loader.h"
#include "data/tokenizer.h"
#include "dist/sync_check.h"
#include "engine/error.h"
#include "tools/flags.h"
#include "tools/trainer.h"

namespace switchlora {

TrainOptions parse_train_flags(Flags& f) {
  TrainOptions o;
  o.model_config = f.get_string("model_config", "", "model config JSON (HF LLaMA fields), e.g. configs/llama_9m.json");
  o.data = f.get_string("data", "data/brown", "prepared data directory (tokenizer + *_train_*.bin, *_val_*.bin)");
  o.vocab_size = f.get_int("vocab_size", 0, "vocabulary size; 0 = the tokenizer's");
  o.batch_size = f.get_int("batch_size", 8, "sequences per micro-batch per rank");
  o.total_batch_size = f.get_int("total_batch_size", 0, "sequences per optimizer step (all ranks); 0 = batch_size x ranks");
  o.max_length = f.get_int("max_length", 256, "sequence length T");
  o.lr = f.get_float("lr", 1e-3f, "peak learning rate");
  o.warmup_steps = f.get_int("warmup_steps", 0, "linear warm-up steps");
  o.scheduler = f.get_string("scheduler", "cosine", "constant | linear | cosine | cosine_with_min_lr");
  o.min_lr_ratio = f.get_float("min_lr_ratio", 0.1f, "floor of cosine_with_min_lr, as a fraction of --lr");
  o.num_training_steps = f.get_int("num_training_steps", 1000, "optimizer steps");
  o.adam_beta1 = f.get_float("adam_beta1", 0.9f, "AdamW beta1");
  o.adam_beta2 = f.get_float("adam_beta2", 0.999f, "AdamW beta2");
  o.adam_eps = f.get_float("adam_eps", 1e-8f, "AdamW epsilon");
  o.weight_decay = f.get_float("weight_decay", 0.0f, "AdamW decoupled weight decay");
  o.clip_grad_norm = f.get_float("clip_grad_norm", 1.0f, "global gradient-norm clip; 0 = off");
  o.eval_every = f.get_int("eval_every", 100, "evaluate on the validation split every N steps; 0 = only at the end");
  o.max_eval_batches = f.get_int("max_eval_batches", 0, "cap on validation micro-batches; 0 = the whole split");
  o.save_every = f.get_int("save_every", 0, "checkpoint every N steps (always at the end); 0 = only at the end");
  o.save_dir = f.get_string("save_dir", "runs/default", "where checkpoints and metrics.jsonl go");
  o.keep_checkpoints = f.get_int("keep_checkpoints", 2, "keep the newest N checkpoints; 0 = all");
  o.seed = f.get_int("seed", 0, "seed for init, data order and switching");
  o.resume = f.get_string("resume", "", "continue from this checkpoint (a file, or a run directory: its newest)");
  o.autoresume = f.get_bool("autoresume", "continue from the newest checkpoint in --save_dir when there is one");
  o.check_sync_every = f.get_int("check_sync_every", 0,
                                 "with mpirun: abort if any rank's parameters differ, checked every N steps; 0 = only at start");
  o.device = f.get_string("device", "auto", "cpu | cuda | auto (cuda when a GPU is visible)");
  o.dtype = f.get_string("dtype", "fp32", "fp32 | bf16: GEMM inputs in bf16 on the GPU (fp32 masters, state, losses)");
  o.tf32 = f.get_bool("tf32", "with --dtype fp32 on the GPU: TF32 tensor cores for the GEMMs");
  o.lora.use_lora = f.get_bool("use_lora", "freeze W and train LoRA adapters A, B on q,k,v,o,gate,up,down");
  o.lora.lora_rank = f.get_int("lora_rank", 128, "LoRA rank r");
  o.lora.lora_alpha = f.get_float("lora_alpha", 1.0f, "LoRA scale s = lora_alpha / r");
  o.lora.init_lora_type = f.get_string("init_lora_type", "switchlora", "switchlora | origin_lora");
  o.switch_lora = f.get_bool("switch_lora", "SwitchLoRA: switch adapter vectors with candidates (implies --use_lora)");
  o.sw.switch_lora_interval = f.get_int("switch_lora_interval", 40, "base switch interval (steps per full sweep of r)");
  o.sw.switch_lora_descent_rate = f.get_float("switch_lora_descent_rate", 0.1f, "D = rate x num_training_steps");
  o.sw.adam_warm_step = f.get_int("adam_warm_step", 5, "steps a switched vector's counterpart stays frozen");
  o.sw.switch_descend_type = f.get_string("switch_descend_type", "exponential", "exponential | Z");
  o.sw.fix_switch_lora_interval = f.get_bool("fix_switch_lora_interval", "keep the switch interval constant");
  o.sw.discontinuous_switch = f.get_bool("discontinuous_switch", "draw candidates at random instead of round robin");
  o.sw.remain_switch_state = f.get_bool("remain_switch_state", "keep the counterpart's Adam moments on a switch");
  o.sw.remain_switch_step_state = f.get_bool("remain_switch_step_state", "keep the counterpart's Adam step counter");
  o.sw.offload_candidates = !f.get_bool("no_offload_candidates",
                                        "on the GPU: keep the candidate pools in device memory, not pinned host memory");
  if (o.switch_lora) o.lora.use_lora = true;
  // SwitchLoRA draws A and B from its candidate pools, which always use
  // SwitchLoRA's sigma_A, sigma_B; a B = 0 init would make every B switch empty.
  if (o.switch_lora && o.lora.init_lora_type != "switchlora")
    throw Error("--init_lora_type " + o.lora.init_lora_type +
                " cannot be used with --switch_lora (its candidates use the switchlora init)");
  if (!o.lora.use_lora) {
    for (const char* flag : {"lora_rank", "lora_alpha", "init_lora_type"})
      if (f.has(flag)) throw Error(std::string("--") + flag + " needs --use_lora or --switch_lora");
  }
  if (!o.switch_lora) {
    for (const char* flag : {"switch_lora_interval", "switch_lora_descent_rate", "adam_warm_step",
                             "switch_descend_type", "fix_switch_lora_interval", "discontinuous_switch",
                             "remain_switch_state", "remain_switch_step_state", "no_offload_candidates"})
      if (f.has(flag)) throw Error(std::string("--") + flag + " needs --switch_lora");
  }
  o.sw.num_training_steps = o.num_training_steps;
  o.sw.seed = (uint64_t)o.seed;
  return o;
}

namespace {

// The flags that define a run; resuming with different ones is an error.
nlohmann::json run_identity(const TrainOptions& o, const LlamaConfig& c) {
  return {{"config", nlohmann::json::parse(config_to_json(c))},
          {"batch_size", o.batch_size}, {"total_batch_size", o.total_batch_size},
          {"max_length", o.max_length}, {"lr", o.lr}, {"warmup_steps", o.warmup_steps},
          {"scheduler", o.scheduler}, {"min_lr_ratio", o.min_lr_ratio},
          {"num_training_steps", o.num_training_steps}, {"weight_decay", o.weight_decay},
          {"clip_grad_norm", o.clip_grad_norm}, {"seed", o.seed}, {"use_lora", o.lora.use_lora},
          {"lora_rank", o.lora.lora_rank}, {"lora_alpha", o.lora.lora_alpha},
          {"init_lora_type", o.lora.init_lora_type}, {"switch_lora", o.switch_lora},
          {"switch_lora_interval", o.sw.switch_lora_interval},
          {"switch_lora_descent_rate", o.sw.switch_lora_descent_rate},
          {"adam_warm_step", o.sw.adam_warm_step}, {"switch_descend_type", o.sw.switch_descend_type},
          {"fix_switch_lora_interval", o.sw.fix_switch_lora_interval},
          {"discontinuous_switch", o.sw.discontinuous_switch},
          {"remain_switch_state", o.sw.remain_switch_state},
          {"remain_switch_step_state", o.sw.remain_switch_step_state}};
}

// What every rank must share, beyond run_identity: the flags that shape
// collectives or the arithmetic, and the data itself. Ranks that differ would
// drift apart or wait forever in mismatched collectives.
nlohmann::json rank_identity(const TrainOptions& o, const LlamaConfig& c, const DataLoader& train,
                             const DataLoader& val) {
  nlohmann::json j = run_identity(o, c);
  j["adam"] = {o.adam_beta1, o.adam_beta2, o.adam_eps};
  j["eval_every"] = o.eval_every;
  j["max_eval_batches"] = o.max_eval_batches;
  j["check_sync_every"] = o.check_sync_every;
  j["resume"] = o.resume;
  j["autoresume"] = o.autoresume;
  j["device"] = o.device;  // the resolved backend kind: ranks must not mix CPU and GPU arithmetic
  j["dtype"] = o.dtype;
  j["tf32"] = o.tf32;
  j["train_files"] = describe_files(train.files());
  j["val_files"] = describe_files(val.files());
  return j;
}

// Ctrl-C or SIGTERM: finish the current step, save a checkpoint, stop. A
// second one stops at once.
volatile std::sig_atomic_t g_stop_requested = 0;
void request_stop(int) {
  if (g_stop_requested) std::_Exit(130);
  g_stop_requested = 1;
}

std::string format_duration(double s) {
  char buf[32];
  const int t = (int)std::lround(s);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%dh%02dm", t / 3600, t / 60 % 60);
  else std::snprintf(buf, sizeof buf, "%dm%02ds", t / 60, t % 60);
  return buf;
}

// Keeps the lines of metrics.jsonl up to `step` (a resumed run rewrites the rest).
void truncate_metrics(const std::string& path, int step) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("step", 0) <= step) kept += line + "\n";
  }
  write_file_atomic(path, kept);
}

}  // namespace

int cmd_train(int argc, char** argv, Communicator& host_comm) {
  Flags f(argc, argv, "train", "Pre-train a LLaMA model: full-rank, --use_lora or --switch_lora.");
  TrainOptions o = parse_train_flags(f);
  if (f.finish()) return 0;
  // The backend on this rank's GPU (or the CPU), and the communicator that
  // can all-reduce its memory: NCCL on GPUs, MPI (or nothing) on the CPU.
  Backend& be = backend_for(o.device, host_comm.local_rank());
  o.device = be.device() == Device::kCuda ? "cuda" : "cpu";
  const std::unique_ptr<Communicator> gpu_comm = make_gpu_communicator(host_comm, be);
  Communicator& comm = gpu_comm ? *gpu_comm : host_comm;
  const bool main_rank = comm.rank() == 0;
  if (o.model_config.empty()) throw Error("--model_config is required (e.g. configs/llama_9m.json)");
  if (o.total_batch_size == 0) o.total_batch_size = o.batch_size * comm.world();

  // Model config; the vocabulary comes from the tokenizer unless overridden.
  LlamaConfig config = load_config(o.model_config);
  const Tokenizer tok = Tokenizer::load(o.data);
  config.vocab_size = o.vocab_size > 0 ? o.vocab_size : tok.vocab_size();
  if (config.vocab_size < tok.vocab_size())
    throw Error("--vocab_size " + std::to_string(config.vocab_size) + " is smaller than the tokenizer's " +
                std::to_string(tok.vocab_size()) + " in " + o.data);
  if (o.max_length > config.max_sequence_length)
    throw Error("--max_length " + std::to_string(o.max_length) + " exceeds max_sequence_length " +
                std::to_string(config.max_sequence_length) + " of " + o.model_config);

  DataLoader train(o.data, "train", o.batch_size, o.max_length, comm.rank(), comm.world(), (uint64_t)o.seed,
                   config.vocab_size);
  DataLoader val(o.data, "val", o.batch_size, o.max_length, comm.rank(), comm.world(), (uint64_t)o.seed,
                 config.vocab_size);
  if (comm.world() > 1) check_ranks_agree(comm, rank_identity(o, config, train, val));
  Trainer trainer(o, config, comm, be);
  const int all_val = (int)(val.num_sequences() / ((int64_t)o.batch_size * comm.world()));
  const int eval_batches = o.max_eval_batches > 0 ? std::min(o.max_eval_batches, all_val) : all_val;

  // Resume: the checkpoint holds model, optimizer, switcher, step and data position.
  std::filesystem::create_directories(o.save_dir);
  const std::string metrics_path = o.save_dir + "/metrics.jsonl";
  std::string resume = o.resume.empty() ? "" : resolve_checkpoint(o.resume);
  if (!o.resume.empty() && resume.empty()) throw Error("--resume " + o.resume + ": no checkpoint in that directory");
  if (resume.empty() && o.autoresume) resume = resolve_checkpoint(o.save_dir);
  const nlohmann::json identity = run_identity(o, config);
  if (!resume.empty()) {
    Checkpoint ck = load_checkpoint(resume);
    for (auto& [key, value] : identity.items())
      if (ck.meta["identity"][key] != value)
        throw Error(resume + ": checkpoint was trained with " + key + " = " + ck.meta["identity"][key].dump() +
                    ", this run has " + value.dump());
    trainer.load_state(ck, resume);
    train.set_position(ck.meta["data_position"].get<int64_t>());
    if (main_rank) {
      truncate_metrics(metrics_path, trainer.step());
      std::printf("resumed from %s at step %d\n", resume.c_str(), trainer.step());
    }
  } else if (main_rank) {
    write_file_atomic(metrics_path, "");
  }
  // Same weights on every rank before the first step, a resumed run's too.
  if (comm.world() > 1) trainer.check_in_sync(resume.empty() ? "at start" : "at start, after loading " + resume);
  std::string last_saved;
  auto save = [&]() {
    if (!main_rank) return;
    Checkpoint ck;
    trainer.save_state(ck);
    ck.meta["identity"] = identity;
    ck.meta["data_position"] = train.position();
    ck.meta["data"] = o.data;
    last_saved = save_run_checkpoint(o.save_dir, trainer.step(), ck, o.keep_checkpoints);
  };

  const ParamStore& ps = trainer.model.params;
  if (main_rank) {
    const size_t cand = trainer.switcher ? trainer.switcher->num_candidates() : 0;
    std::printf("model %s: V=%d C=%d L=%d | params: total %zu, trainable %zu, frozen %zu, candidates %zu\n",
                o.model_config.c_str(), config.vocab_size, config.hidden_size, config.num_hidden_layers,
                ps.num_trainable() + ps.num_frozen(), ps.num_trainable(), ps.num_frozen(), cand);
    std::printf("device %s | dtype %s%s | communicator %s\n", be.name().c_str(), o.dtype.c_str(),
                o.tf32 ? " (tf32 GEMMs)" : "", comm.name().c_str());
    std::printf("method %s | batch %d x %d accumulation x %d rank(s) = %d sequences of %d tokens per step\n",
                o.switch_lora ? "switchlora" : o.lora.use_lora ? "lora" : "full-rank", o.batch_size,
                trainer.grad_accum_steps(), comm.world(), o.total_batch_size, o.max_length);
  }

  std::ofstream metrics;
  if (main_rank) metrics.open(metrics_path, std::ios::app);
  auto log = [&](const nlohmann::json& j) {
    if (main_rank) metrics << j.dump() << "\n" << std::flush;
  };
  auto next_train = [&](int32_t* in, int32_t* tg) { train.next_batch(in, tg); };
  auto next_val = [&](int32_t* in, int32_t* tg) { val.next_batch(in, tg); };
  auto evaluate = [&]() {
    val.reset();
    const float loss = trainer.evaluate(next_val, eval_batches);
    return std::make_pair(loss, std::exp(loss));
  };

  // The training loop.
  const double tokens_per_step = (double)o.total_batch_size * o.max_length;
  const int first = trainer.step();
  const auto t_start = std::chrono::steady_clock::now();
  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
  while (trainer.step() < o.num_training_steps) {
    const auto t0 = std::chrono::steady_clock::now();
    const StepStats s = trainer.train_step(next_train);
    const auto t1 = std::chrono::steady_clock::now();
    const double dt = std::chrono::duration<double>(t1 - t0).count();
    const double elapsed = std::chrono::duration<double>(t1 - t_start).count();
    const int step = trainer.step();
    const double eta = elapsed / (step - first) * (o.num_training_steps - step);
    nlohmann::json m = {{"step", step}, {"loss", s.loss}, {"lr", s.lr}, {"grad_norm", s.grad_norm},
                        {"tokens_per_s", tokens_per_step / dt}, {"allreduce_bytes", s.allreduce_bytes}};
    if (trainer.switcher) {
      m["switched"] = s.switched;
      m["switch_interval"] = s.switch_interval;
    }
    log(m);
    if (main_rank) {
      std::printf("step %5d/%d | loss %.4f | lr %.2e | norm %.3f | %.0f tok/s | ETA %s", step,
                  o.num_training_steps, s.loss, s.lr, s.grad_norm, tokens_per_step / dt,
                  format_duration(eta).c_str());
      if (trainer.switcher) std::printf(" | switched %d", s.switched);
      if (comm.world() > 1) std::printf(" | allreduce %.2f MB", s.allreduce_bytes / 1e6);
      std::printf("\n");
      std::fflush(stdout);
    }
    if (comm.world() > 1 && o.check_sync_every > 0 && step % o.check_sync_every == 0)
      trainer.check_in_sync("at step " + std::to_string(step));
    const bool last = step == o.num_training_steps;
    if (o.eval_every > 0 && step % o.eval_every == 0 && !last) {
      const auto [loss, ppl] = evaluate();
      log({{"step", step}, {"val_loss", loss}, {"val_ppl", ppl}});
      if (main_rank) std::printf("step %5d | val loss %.4f | val ppl %.2f\n", step, loss, ppl);
    }
    if (o.save_every > 0 && step % o.save_every == 0 && !last) save();
    // Every rank stops at the same step, whichever rank got the signal.
    float stop = g_stop_requested ? 1.0f : 0.0f;
    comm.allreduce_mean(&stop, 1);
    if (stop > 0 && !last) {
      save();
      if (main_rank)
        std::printf("interrupted at step %d: saved %s; continue with --autoresume (same flags)\n", step,
                    last_saved.c_str());
      return 130;
    }
  }
  save();
  const auto [loss, ppl] = evaluate();
  log({{"step", trainer.step()}, {"val_loss", loss}, {"val_ppl", ppl}, {"final", true}});
  if (main_rank) {
    std::printf("final validation loss %.4f | perplexity %.2f\n", loss, ppl);
    std::printf("checkpoint: %s\n", last_saved.c_str());
  }
  return 0;
}

}  // namespace switchlora
