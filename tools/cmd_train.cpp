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
#include <set>

#include "data/data_vocab.h"
#include "data/file_io.h"
#include "data/loader.h"
#include "dist/sync_check.h"
#include "engine/error.h"
#include "train/flags.h"
#include "train/run_lock.h"
#include "train/trainer.h"

namespace switchlora {

namespace {

// The run's identity is every flag's value except these. Some only name
// where things are (the config's and the method's resolved values stand in
// for --model_config, --vocab_size and the method's spellings); the rest may
// change on resume: saving, evaluation, the data's and warm start's paths,
// and which device computes.
const std::set<std::string> kNotIdentity = {"model_config", "vocab_size", "method", "use_lora", "switch_lora"};
const std::set<std::string> kMayChangeOnResume = {"resume",           "autoresume",   "save_dir",
                                                  "save_every",       "keep_checkpoints", "save_initial",  "eval_every",
                                                  "max_eval_batches", "check_sync_every", "data",
                                                  "error_if_nonfinite",
                                                  "warmed_up_model",  "device",       "dtype", "tf32"};
// Every rank must agree on all but these (each rank may see the same data
// under its own path: the files themselves are compared instead).
const std::set<std::string> kMayDifferAcrossRanks = {"save_dir", "save_every", "keep_checkpoints", "save_initial",
                                                     "data"};

std::set<std::string> united(std::set<std::string> a, const std::set<std::string>& b) {
  a.insert(b.begin(), b.end());
  return a;
}

nlohmann::json identity(const Flags& f, const std::set<std::string>& except, const TrainOptions& o,
                        const LlamaConfig& c) {
  nlohmann::json j = f.values(united(kNotIdentity, except));
  j["method"] = o.method;
  j["config"] = nlohmann::json::parse(config_to_json(c));
  j["total_batch_size"] = o.total_batch_size;  // 0 means batch_size x ranks
  return j;
}

// What a resumed run must share with the checkpoint. A flag the checkpoint
// does not know (added since) must be at its default.
void check_resumable(const nlohmann::json& saved, const nlohmann::json& now, const Flags& f, const std::string& path) {
  for (auto& [key, value] : now.items()) {
    const nlohmann::json was = saved.contains(key) ? saved[key] : f.default_of(key);
    if (was != value)
      throw Error(path + ": checkpoint was trained with " + key + " = " + show_value(was) + ", this run has " +
                  show_value(value) + " (flags that may change on resume: " +
                  nlohmann::json(kMayChangeOnResume).dump() + ")");
  }
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
  resolve_total_batch_size(o, comm.world());

  // Model config; the vocabulary comes from the data's tokenizer unless
  // overridden (the paper's 32100 for T5's 32000 SentencePiece pieces).
  LlamaConfig config = load_config(o.model_config);
  const DataVocab vocab = data_vocab(o.data);
  config.vocab_size = o.vocab_size > 0 ? o.vocab_size : vocab.vocab_size;
  if (config.vocab_size < vocab.vocab_size)
    throw Error("--vocab_size " + std::to_string(config.vocab_size) + " is smaller than the " + vocab.tokenizer +
                " tokenizer's " + std::to_string(vocab.vocab_size) + " in " + o.data);
  if (o.max_length > config.max_sequence_length)
    throw Error("--max_length " + std::to_string(o.max_length) + " exceeds max_sequence_length " +
                std::to_string(config.max_sequence_length) + " of " + o.model_config);

  DataLoader train(o.data, "train", o.batch_size, o.max_length, comm.rank(), comm.world(), (uint64_t)o.seed,
                   config.vocab_size);
  DataLoader val(o.data, "val", o.batch_size, o.max_length, comm.rank(), comm.world(), (uint64_t)o.seed,
                 config.vocab_size);
  if (comm.world() > 1) {
    // Ranks that differ would drift apart or wait forever in mismatched collectives.
    nlohmann::json ranks = identity(f, kMayDifferAcrossRanks, o, config);
    ranks["device"] = o.device;  // resolved: ranks must not mix CPU and GPU arithmetic
    ranks["train_files"] = describe_files(train.files());
    ranks["val_files"] = describe_files(val.files());
    check_ranks_agree(comm, ranks);
  }
  Trainer trainer(o, config, comm, be);
  const int all_val = (int)(val.num_sequences() / ((int64_t)o.batch_size * comm.world()));
  const int eval_batches = o.max_eval_batches > 0 ? std::min(o.max_eval_batches, all_val) : all_val;

  // Resume: the checkpoint holds model, optimizer, switcher, step and data position.
  std::filesystem::create_directories(o.save_dir);
  std::unique_ptr<RunLock> lock;  // rank 0 writes the directory, so rank 0 holds it
  if (main_rank) {
    lock = std::make_unique<RunLock>(o.save_dir);
    if (const int n = remove_stale_temporaries(o.save_dir))
      std::printf("removed %d temporary file(s) a killed run left in %s\n", n, o.save_dir.c_str());
  }
  const std::string metrics_path = o.save_dir + "/metrics.jsonl";
  std::string resume = o.resume.empty() ? "" : resolve_checkpoint(o.resume);
  if (!o.resume.empty() && resume.empty()) throw Error("--resume " + o.resume + ": no checkpoint in that directory");
  if (resume.empty() && o.autoresume) resume = resolve_checkpoint(o.save_dir);
  const nlohmann::json run = identity(f, kMayChangeOnResume, o, config);
  if (!resume.empty()) {
    Checkpoint ck = load_checkpoint(resume);
    check_resumable(ck.meta.value("identity", nlohmann::json::object()), run, f, resume);
    trainer.load_state(ck, resume);
    const nlohmann::json position = ck.meta.value("data_position", nlohmann::json());
    if (!position.is_number_integer() || position.get<int64_t>() < 0)
      throw Error(resume + ": checkpoint data_position " + position.dump() + " is not a count of sequences");
    train.set_position(position.get<int64_t>());
    if (main_rank) {
      truncate_metrics(metrics_path, trainer.step());
      std::printf("resumed from %s at step %d\n", resume.c_str(), trainer.step());
    }
  } else if (main_rank) {
    write_file_atomic(metrics_path, "");
  }
  // Every flag of this run (for `switchlora plot`'s legends and token axis).
  if (main_rank) write_file_atomic(o.save_dir + "/run.json", identity(f, {}, o, config).dump(2) + "\n");
  // Same weights on every rank before the first step, a resumed run's too.
  if (comm.world() > 1) trainer.check_in_sync(resume.empty() ? "at start" : "at start, after loading " + resume);
  std::string last_saved;
  auto checkpoint = [&]() {
    Checkpoint ck;
    trainer.save_state(ck);
    ck.meta["identity"] = run;
    ck.meta["data_position"] = train.position();
    ck.meta["data"] = o.data;
    ck.meta["warmed_up_model"] = o.warmed_up_model;  // inspect's baseline when there is no initial.bin
    return ck;
  };
  // A checkpoint is only written from a finite state: after a skipped step,
  // or with weights that overflowed, the newest finite checkpoint stays the
  // newest (and is never rotated out by a broken one).
  bool finite = true;  // the last step's loss and norm were finite
  auto save = [&]() {
    if (!main_rank) return;
    Checkpoint ck;
    bool ok = finite;
    if (ok) {
      ck = checkpoint();  // its tensors are host copies already: check those, not a second copy
      for (const Param& p : trainer.model.params.params) ok = ok && ck.finite(p.name);
    }
    if (ok)
      last_saved = save_run_checkpoint(o.save_dir, trainer.step(), ck, o.keep_checkpoints);
    else
      std::printf("step %d: not saving a checkpoint: the model is not finite (newest finite checkpoint: %s)\n",
                  trainer.step(), last_saved.empty() ? "none" : last_saved.c_str());
  };
  // The model as step 0 computes it, outside the checkpoint rotation: the
  // baseline `switchlora inspect` measures the learned update against.
  if (o.save_initial && resume.empty() && main_rank) save_checkpoint(o.save_dir + "/initial.bin", checkpoint());

  const ParamStore& ps = trainer.model.params;
  if (main_rank) {
    size_t cand = 0;
    for (const auto& [name, values] : trainer.method->sync_buffers()) cand += values.size();
    std::printf("model %s: V=%d C=%d L=%d | params: total %zu, trainable %zu, frozen %zu, candidates %zu, "
                "optimizer state %zu\n",
                o.model_config.c_str(), config.vocab_size, config.hidden_size, config.num_hidden_layers,
                ps.num_trainable() + ps.num_frozen(), ps.num_trainable(), ps.num_frozen(), cand,
                trainer.method->optimizer_state_size());
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
    finite = !s.skipped;
    if (s.skipped) {
      m["skipped"] = 1;
      m["skipped_steps"] = trainer.skipped_steps();
    }
    log(m);
    if (main_rank) {
      std::printf("step %5d/%d | loss %.4f | lr %.2e | norm %.3f | %.0f tok/s | ETA %s", step,
                  o.num_training_steps, s.loss, s.lr, s.grad_norm, tokens_per_step / dt,
                  format_duration(eta).c_str());
      std::printf("%s", s.skipped ? "" : trainer.method->progress().c_str());
      if (comm.world() > 1) std::printf(" | allreduce %.2f MB", s.allreduce_bytes / 1e6);
      if (s.skipped) std::printf(" | NON-FINITE: switch and update skipped (%d so far)", trainer.skipped_steps());
      std::printf("\n");
      std::fflush(stdout);
    }
    if (s.skipped) {
      const std::string where = "step " + std::to_string(step) + " had a non-finite " +
                                (std::isfinite(s.loss) ? "gradient norm" : "loss") + " (lr " + std::to_string(s.lr) +
                                "); newest finite checkpoint: " + (last_saved.empty() ? "none" : last_saved);
      if (o.error_if_nonfinite) throw Error(where + " (--error_if_nonfinite)");
      // The authors' rule: give up once more than 5% of the run's steps were skipped.
      if (trainer.skipped_steps() > 0.05 * o.num_training_steps)
        throw Error("more than 5% of the " + std::to_string(o.num_training_steps) + " steps (" +
                    std::to_string(trainer.skipped_steps()) + ") had a non-finite loss or gradient norm: stopping; " +
                    where + " (is --lr too high?)");
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
