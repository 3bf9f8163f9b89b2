// switchlora bench: time full training steps (forward, backward, clip,
// switch, optimizer) on random tokens, and print one JSON line last:
//   {"device": ..., "tokens_per_s": ..., "step_ms": ..., "gflops": ...,
//    "best_step_ms": ..., "best_gflops": ...,
//    "gemm_library": ..., "gemm_gflops": ..., "fraction_of_gemm": ...,
//    "gemm_rates": {...}, "mfu": ..., "peak_rss_mb": ..., "profile_ms": {...}}
// Model FLOPs per token = 6 N_matmul + 12 L T C (forward + backward; the
// PaLM / llm.c convention): N_matmul counts every weight matrix including
// lm_head, as if full rank, so methods compare on equal terms. tokens_per_s,
// step_ms and gflops are over all timed steps; best_* are the fastest step's.
// The yardstick (gemm_gflops) is the fastest GEMM library measured in this
// run (tools/gemm_yardstick.h), each library's best repetition;
// fraction_of_gemm = best_gflops / gemm_gflops. --profile adds the time per
// phase of a step; --gemm_shapes every library's rate at the model's shapes
// and, for full rank, "gemm_ceiling": the largest fraction_of_gemm those
// rates allow; with LoRA adapters, "lora_gemm_ms": their products' time a
// step at those rates.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/ops.h"
#include "engine/profile.h"
#include "engine/rng.h"
#include "model/linear.h"
#include "tools/commands.h"
#include "tools/gemm_yardstick.h"
#include "train/flags.h"
#include "train/trainer.h"

namespace switchlora {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The model's GEMMs, one of each kind (--gemm_shapes): forward, input and
// weight gradients of the linear layers and lm_head, each with how many a
// full-rank step multiplies (L layers: q, k, v, o are 4 a layer, gate and up
// 2, down 1).
std::vector<GemmShape> full_rank_shapes(const LlamaConfig& c, int N) {
  const int C = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, L = c.num_hidden_layers;
  return {{"q,k,v,o forward  x W^T", N, C, C, false, true, 4 * L},
          {"q,k,v,o dx       dy W", N, C, C, false, false, 4 * L},
          {"q,k,v,o dW       dy^T x", C, C, N, true, false, 4 * L},
          {"gate,up forward  x W^T", N, I, C, false, true, 2 * L},
          {"gate,up dx       dy W", N, C, I, false, false, 2 * L},
          {"gate,up dW       dy^T x", I, C, N, true, false, 2 * L},
          {"down forward     x W^T", N, C, I, false, true, L},
          {"down dx          dy W", N, I, C, false, false, L},
          {"down dW          dy^T x", C, I, N, true, false, L},
          {"lm_head forward  x W^T", N, V, C, false, true, 1},
          {"lm_head dx       dy W", N, C, V, false, false, 1},
          {"lm_head dW       dy^T x", V, C, N, true, false, 1}};
}

// LoRA's products for each kind of layer (in -> out), as many as a step
// multiplies, on the path model/linear.cpp takes at this batch: a merged
// layer (lora_merge_pays) forms W + s B A twice a step (for the forward and
// again for dx) in place of the rank-r updates of N rows, xa B^T and dxa A.
std::vector<GemmShape> lora_shapes(const LlamaConfig& c, int N, int r, float dropout) {
  const int C = c.hidden_size, I = c.intermediate_size, L = c.num_hidden_layers;
  struct Kind {
    const char* name;
    int in, out, count;
  };
  std::vector<GemmShape> s;
  for (const Kind& k : {Kind{"q,k,v,o", C, C, 4 * L}, Kind{"gate,up", C, I, 2 * L}, Kind{"down", I, C, L}}) {
    const std::string name = std::string(k.name) + " LoRA ";
    const bool merged = lora_merge_pays(N, k.in, k.out, r, dropout);
    s.push_back({name + "x A^T", N, r, k.in, false, true, k.count});
    if (!merged) s.push_back({name + "xa B^T", N, k.out, r, false, true, k.count});
    s.push_back({name + "dxa dy B", N, r, k.out, false, false, k.count});
    s.push_back({name + "dB dy^T xa", k.out, r, N, true, false, k.count});
    s.push_back({name + "dA dxa^T x", r, k.in, N, true, false, k.count});
    if (merged) s.push_back({name + "merge B A", k.out, k.in, r, false, false, 2 * k.count});
    else s.push_back({name + "dx dxa A", N, k.in, r, false, false, k.count});
  }
  return s;
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  Flags f(argc, argv, "bench", "Time training steps on random tokens; prints a JSON line last.");
  const int steps = f.get_int("steps", 10, "timed steps");
  const int warmup = f.get_int("warmup", 2, "untimed steps first");
  const bool profile = f.get_bool("profile", "then time each phase of --steps more steps (a table, and profile_ms in the JSON)");
  const int gemm_rounds = f.get_int("gemm_rounds", 3,
                                    "interleaved rounds of the GEMM yardstick before the timed steps and again "
                                    "after, best of each library kept");
  const bool gemm_shapes = f.get_bool("gemm_shapes", "also print every GEMM library's rate at the model's shapes");
  const float peak_tflops = f.get_float("peak_tflops", 990.0f,
                                        "the card's dense matrix rate for MFU (H100/H200 bf16: 990); GPU only");
  TrainOptions o = parse_train_flags(f);
  if (f.finish()) return 0;
  if (o.model_config.empty()) throw Error("--model_config is required");
  if (steps <= 0) throw Error("--steps must be > 0, got " + std::to_string(steps));
  if (warmup < 0) throw Error("--warmup must be >= 0, got " + std::to_string(warmup));
  if (gemm_rounds <= 0) throw Error("--gemm_rounds must be > 0, got " + std::to_string(gemm_rounds));
  LlamaConfig config = load_config(o.model_config);
  config.vocab_size = o.vocab_size > 0 ? o.vocab_size : 8192;
  resolve_total_batch_size(o, 1);
  o.num_training_steps = o.sw.num_training_steps = warmup + steps * (profile ? 2 : 1);
  SingleProcess comm;
  // Every call passes through the profiler; it times only while on().
  const int r = o.lora.use_lora ? o.lora.lora_rank : 0;
  ProfilingBackend be(backend_for(o.device), config.hidden_size, config.intermediate_size, config.vocab_size, r);
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
  // The yardstick: the fastest GEMM library at a large square size, measured
  // now and again after the steps, the best of both kept (DESIGN §9): the
  // steps sit between its two halves, so a noisy moment at one end cannot
  // set it.
  const bool gpu = be.device() == Device::kCuda;
  const int n = gpu ? 8192 : 2048;
  const std::vector<GemmShape> square = {{"square", n, n, n, false, false}};
  std::vector<GemmRate> rates = measure_gemm_rates(be, square, gemm_rounds);
  // Each step timed on its own too: the fastest one is what the machine
  // does undisturbed, the same way the yardstick keeps its best repetition.
  double sec = 0, best_step_sec = INFINITY;
  for (int i = 0; i < steps; i++) {
    const auto t0 = std::chrono::steady_clock::now();
    trainer.train_step(random_batch);
    be.synchronize();
    const double s = seconds_since(t0);
    sec += s;
    best_step_sec = std::min(best_step_sec, s);
  }
  // The process's peak resident memory so far (host memory: on the GPU the
  // model lives in device memory, which this does not count).
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const double peak_rss_mb = usage.ru_maxrss / 1024.0;  // Linux reports KiB

  std::vector<std::pair<std::string, double>> phases;
  double profiled_sec = 0;
  if (profile) {
    be.on();
    const auto p0 = std::chrono::steady_clock::now();
    for (int i = 0; i < steps; i++) trainer.train_step(random_batch);
    be.synchronize();
    profiled_sec = seconds_since(p0);
    be.off();
    phases = be.seconds();
  }

  const std::vector<GemmRate> after = measure_gemm_rates(be, square, gemm_rounds);
  for (size_t i = 0; i < rates.size(); i++) rates[i].gflops[0] = std::max(rates[i].gflops[0], after[i].gflops[0]);
  const GemmRate* best = &rates[0];
  for (const GemmRate& g : rates)
    if (g.gflops[0] > best->gflops[0]) best = &g;

  const double C = config.hidden_size, I = config.intermediate_size, L = config.num_hidden_layers;
  const double n_matmul = L * (4 * C * C + 3 * C * I) + (double)V * C;
  const double flops_per_token = 6 * n_matmul + 12 * L * o.max_length * C;
  const double tokens = (double)steps * o.total_batch_size * o.max_length;
  const double gflops = flops_per_token * tokens / sec / 1e9;  // over all timed steps
  const double best_gflops = flops_per_token * (tokens / steps) / best_step_sec / 1e9;
  // MFU: against the card's datasheet rate (GPU only; a CPU has no such number).
  const double mfu = gpu ? gflops / (1000.0 * peak_tflops) : 0.0;
  // The fraction of the GEMM rate compares best with best: the fastest step
  // against the fastest GEMM repetition. A mean over the steps against the
  // yardstick's best would charge every disturbed moment (this machine's
  // rates swing by +-20% within minutes) to the engine alone.
  const double fraction = best_gflops / best->gflops[0];

  double ceiling = 0;  // the GEMM-only bound on a full-rank step's fraction (below)
  double lora_gemm_ms = 0;  // LoRA's products at their shapes' best rates (below)
  if (gemm_shapes) {
    const int N = o.batch_size * o.max_length;
    // The square among them, so the ceiling below compares rates measured
    // in the same interleaved rounds.
    std::vector<GemmShape> shapes = full_rank_shapes(config, N);
    shapes.insert(shapes.begin(), square[0]);
    const size_t first_lora = shapes.size();
    if (r > 0) {
      const std::vector<GemmShape> lora = lora_shapes(config, N, r, o.lora.lora_dropout);
      shapes.insert(shapes.end(), lora.begin(), lora.end());
    }
    const std::vector<GemmRate> at = measure_gemm_rates(be, shapes, gemm_rounds);
    std::printf("%-26s %16s", "GFLOP/s, best of rounds", "M x N x K");
    for (const GemmRate& g : at) std::printf(" %9s", g.library.c_str());
    std::printf("\n");
    for (size_t j = 0; j < shapes.size(); j++) {
      char mnk[48];
      std::snprintf(mnk, sizeof mnk, "%d x %d x %d", shapes[j].M, shapes[j].N, shapes[j].K);
      std::printf("%-26s %16s", shapes[j].what.c_str(), mnk);
      for (const GemmRate& g : at) std::printf(" %9.1f", g.gflops[j]);
      std::printf("\n");
    }
    std::vector<double> rate(shapes.size(), 0.0);  // the best library's, per shape
    for (size_t j = 0; j < shapes.size(); j++)
      for (const GemmRate& g : at) rate[j] = std::max(rate[j], g.gflops[j]);
    auto sec_at_best_rates = [&](size_t from, size_t to) {  // shapes [from, to), each as many as a step has
      double sec = 0;
      for (size_t j = from; j < to; j++) sec += shapes[j].per_step * shapes[j].flops() / (rate[j] * 1e9);
      return sec;
    };
    // The ceiling: a full-rank step's FLOPs over the time its GEMMs alone
    // would take, each at the best library's rate at its shape (measured
    // alone, hot in cache), attention's products at the square's rate and
    // everything else free, as a fraction of the square's best rate in
    // these same rounds. A full-rank step of this shape reaches a larger
    // fraction_of_gemm only by multiplying faster than the libraries do.
    if (o.method == "full") {
      const double gemm_sec = sec_at_best_rates(1, first_lora);
      const double attention_sec = 12 * L * o.max_length * C * N / (rate[0] * 1e9);
      ceiling = flops_per_token * N / (gemm_sec + attention_sec) / 1e9 / rate[0];
      std::printf("GEMM-only ceiling of a full-rank step: its GEMMs %.1f ms at these rates, %.3f of the "
                  "square's %.1f GFLOP/s\n", 1000 * gemm_sec, ceiling, rate[0]);
    }
    // LoRA's products alone, each at its best library's rate: what the
    // profile's "GEMM LoRA adapters" would be if they ran as fast in the step.
    if (r > 0) {
      lora_gemm_ms = 1000 * sec_at_best_rates(first_lora, shapes.size());
      std::printf("LoRA's products: %.1f ms a step at these rates\n", lora_gemm_ms);
    }
  }
  if (profile) {
    std::printf("%-38s %9s %6s\n", "phase (profiled steps)", "ms/step", "share");
    for (const auto& [name, s] : phases)
      std::printf("%-38s %9.2f %5.1f%%\n", name.c_str(), 1000 * s / steps, 100 * s / profiled_sec);
    std::printf("%-38s %9.2f (unprofiled %.2f)\n", "total", 1000 * profiled_sec / steps, 1000 * sec / steps);
  }

  nlohmann::json rates_json = nlohmann::json::object(), profile_json = nlohmann::json::object();
  for (const GemmRate& g : rates) rates_json[g.library] = std::round(g.gflops[0] * 100) / 100;
  for (const auto& [name, s] : phases) profile_json[name] = std::round(1e5 * s / steps) / 100;
  char head[512];
  std::snprintf(head, sizeof head,
                "{\"device\": \"%s\", \"dtype\": \"%s\", \"tokens_per_s\": %.1f, \"step_ms\": %.2f, "
                "\"gflops\": %.2f, \"best_step_ms\": %.2f, \"best_gflops\": %.2f, \"engine_gemm\": \"%s\", "
                "\"weight_gradient_gemm\": \"%s\", \"gemm_library\": \"%s\", \"gemm_gflops\": %.2f, "
                "\"fraction_of_gemm\": %.3f, \"mfu\": %.4f, \"peak_rss_mb\": %.1f",
                be.name().c_str(), o.dtype.c_str(), tokens / sec, 1000 * sec / steps, gflops, 1000 * best_step_sec,
                best_gflops, gpu ? "cublas" : cpu::gemm_library(), gpu ? "cublas" : cpu::weight_gradient_gemm_library(),
                best->library.c_str(), best->gflops[0], fraction, mfu, peak_rss_mb);
  std::string tail;
  if (ceiling > 0) {
    char c[64];
    std::snprintf(c, sizeof c, ", \"gemm_ceiling\": %.3f", ceiling);
    tail += c;
  }
  if (lora_gemm_ms > 0) {
    char c[64];
    std::snprintf(c, sizeof c, ", \"lora_gemm_ms\": %.2f", lora_gemm_ms);
    tail += c;
  }
  if (profile) {
    char total[64];
    std::snprintf(total, sizeof total, ", \"profiled_step_ms\": %.2f", 1000 * profiled_sec / steps);
    tail += ", \"profile_ms\": " + profile_json.dump() + total;
  }
  std::printf("%s, \"gemm_rates\": %s%s}\n", head, rates_json.dump().c_str(), tail.c_str());
  return 0;
}

}  // namespace switchlora
