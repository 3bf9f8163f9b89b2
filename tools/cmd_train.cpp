// switchlora train: pre-train a LLaMA model with any method of
// train/methods.cpp: full rank (default), LoRA (--use_lora) or SwitchLoRA
// (--switch_lora). Read this file top to bottom: flags, model and data,
// then the training loop.
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
#include "train/flags.h"
#include "train/trainer.h"

namespace switchlora {

namespace {

// The flags that define a run; resuming with different ones is an error.
nlohmann::json run_identity(const TrainOptions& o, const LlamaConfig& c) {
  return {{"config", nlohmann::json::parse(config_to_json(c))},
          {"batch_size", o.batch_size}, {"total_batch_size", o.total_batch_size},
          {"max_length", o.max_length}, {"lr", o.lr}, {"warmup_steps", o.warmup_steps},
          {"scheduler", o.scheduler}, {"min_lr_ratio", o.min_lr_ratio},
          {"num_training_steps", o.num_training_steps}, {"weight_decay", o.weight_decay},
          {"clip_grad_norm", o.clip_grad_norm}, {"seed", o.seed}, {"method", o.method},
          {"use_lora", o.lora.use_lora},
          {"lora_rank", o.lora.lora_rank}, {"lora_alpha", o.lora.lora_alpha},
          {"init_lora_type", o.lora.init_lora_type}, {"switch_lora", o.method == "switchlora"},
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
    size_t cand = 0;
    for (const auto& [name, values] : trainer.method->sync_buffers()) cand += values.size();
    std::printf("model %s: V=%d C=%d L=%d | params: total %zu, trainable %zu, frozen %zu, candidates %zu\n",
                o.model_config.c_str(), config.vocab_size, config.hidden_size, config.num_hidden_layers,
                ps.num_trainable() + ps.num_frozen(), ps.num_trainable(), ps.num_frozen(), cand);
    std::printf("device %s | dtype %s%s | communicator %s\n", be.name().c_str(), o.dtype.c_str(),
                o.tf32 ? " (tf32 GEMMs)" : "", comm.name().c_str());
    std::printf("method %s | batch %d x %d accumulation x %d rank(s) = %d sequences of %d tokens per step\n",
                o.method.c_str(), o.batch_size,
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
    m.update(s.method);
    log(m);
    if (main_rank) {
      std::printf("step %5d/%d | loss %.4f | lr %.2e | norm %.3f | %.0f tok/s | ETA %s", step,
                  o.num_training_steps, s.loss, s.lr, s.grad_norm, tokens_per_step / dt,
                  format_duration(eta).c_str());
      std::printf("%s", trainer.method->progress().c_str());
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
