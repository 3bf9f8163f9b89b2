// switchlora bench: time full training steps (forward, backward, clip,
// switch, optimizer) on random tokens, and print one JSON line last:
//   {"device": ..., "tokens_per_s": ..., "step_ms": ..., "gflops": ...,
//    "gemm_gflops": ..., "fraction_of_gemm": ..., "mfu": ..., "peak_rss_mb": ...}
// Model FLOPs per token = 6 N_matmul + 12 L T C (forward + backward; the
// PaLM / llm.c convention): N_matmul counts every weight matrix including
// lm_head, as if full rank, so methods compare on equal terms.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <vector>

#include "engine/error.h"
#include "engine/rng.h"
#include "tools/commands.h"
#include "train/flags.h"
#include "train/trainer.h"

namespace switchlora {

int cmd_bench(int argc, char** argv) {
  Flags f(argc, argv, "bench", "Time training steps on random tokens; prints a JSON line last.");
  const int steps = f.get_int("steps", 10, "timed steps");
  const int warmup = f.get_int("warmup", 2, "untimed steps first");
  const float peak_tflops = f.get_float("peak_tflops", 990.0f,
                                        "the card's dense matrix rate for MFU (H100/H200 bf16: 990); GPU only");
  TrainOptions o = parse_train_flags(f);
  if (f.finish()) return 0;
  if (o.model_config.empty()) throw Error("--model_config is required");
  if (steps <= 0) throw Error("--steps must be > 0");
  LlamaConfig config = load_config(o.model_config);
  config.vocab_size = o.vocab_size > 0 ? o.vocab_size : 8192;
  resolve_total_batch_size(o, 1);
  o.num_training_steps = o.sw.num_training_steps = steps + warmup;
  SingleProcess comm;
  Backend& be = backend_for(o.device);
  Trainer trainer(o, config, comm, be);
  const int V = config.vocab_size;
  Rng rng{(uint64_t)o.seed, kStreamBench, 0};
  auto random_batch = [&](int32_t* in, int32_t* tg) {
    for (int i = 0; i < o.batch_size * o.max_length; i++) {
      in[i] = (int32_t)rng.below(V);
      tg[i] = (int32_t)rng.below(V);
    }
  };
  for (int i = 0; i < warmup; i++) trainer.train_step(random_batch);
  be.synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; i++) trainer.train_step(random_batch);
  be.synchronize();
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // The process's peak resident memory so far (host memory: on the GPU the
  // model lives in device memory, which this does not count).
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const double peak_rss_mb = usage.ru_maxrss / 1024.0;  // Linux reports KiB

  // The backend's GEMM rate at this run's precision, measured now: the
  // yardstick this run's model FLOPs are reported against (DESIGN §9).
  const bool gpu = be.device() == Device::kCuda;
  const int n = gpu ? 8192 : 1024, reps = gpu ? 20 : 5;
  Buffer<float> a(be, (size_t)n * n), b(be, (size_t)n * n), c(be, (size_t)n * n);
  be.matmul(c.data(), a.data(), b.data(), n, n, n, false, false);
  be.synchronize();
  const auto g0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; i++) be.matmul(c.data(), a.data(), b.data(), n, n, n, false, false);
  be.synchronize();
  const double gemm_sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - g0).count();
  const double gemm_gflops = 2.0 * n * n * n * reps / gemm_sec / 1e9;

  const double C = config.hidden_size, I = config.intermediate_size, L = config.num_hidden_layers;
  const double n_matmul = L * (4 * C * C + 3 * C * I) + (double)V * C;
  const double flops_per_token = 6 * n_matmul + 12 * L * o.max_length * C;
  const double tokens = (double)steps * o.total_batch_size * o.max_length;
  const double gflops = flops_per_token * tokens / sec / 1e9;
  // MFU: against the card's datasheet rate (GPU only; a CPU has no such number).
  const double mfu = gpu ? gflops / (1000.0 * peak_tflops) : 0.0;
  std::printf("{\"device\": \"%s\", \"dtype\": \"%s\", \"tokens_per_s\": %.1f, \"step_ms\": %.2f, "
              "\"gflops\": %.2f, \"gemm_gflops\": %.2f, \"fraction_of_gemm\": %.3f, \"mfu\": %.4f, "
              "\"peak_rss_mb\": %.1f}\n",
              be.name().c_str(), o.dtype.c_str(), tokens / sec, 1000 * sec / steps, gflops, gemm_gflops,
              gflops / gemm_gflops, mfu, peak_rss_mb);
  return 0;
}

}  // namespace switchlora
