// The whole model and the whole training step on the CUDA backend against
// the CPU backend: the same config, seed and tokens on both, compared after
// one forward/backward and after 20 optimizer steps. test_cuda_ops checks the
// ops one at a time; this checks that the model, the optimizer and the
// switcher drive them identically on both backends (the right pointers, the
// right order, no host access to device memory, candidates moved correctly
// whether they live in pinned host memory or on the GPU). Without a GPU
// every case is skipped (and ctest reports "Skipped").
//
// Errors are per tensor, ||gpu - cpu|| / ||cpu|| (L2), so each parameter's
// gradient is judged at its own scale. Bounds, fp32:
//   1e-4: test_cuda_ops holds every op to 1e-5 of its tensor's largest
//     element, ~1e-6 in L2 (reordered fp32 sums). One forward and backward
//     of this 2-layer model runs ~70 ops, ~35 of them in sequence on any
//     path; at this init no layer amplifies errors much, so they add up to a
//     few 1e-5 at most.
//   20 training steps, 1e-4 again: Adam's update m / sqrt(v) is scale-free,
//     so a gradient that differs by 1e-5 relative moves the parameter by
//     lr x 1e-5 differently; 20 such steps with lr = 1e-2 change parameters
//     of scale ~0.2 by ~1e-5 relative. The losses then differ by about as
//     much as the parameters do.
// bf16 (forward/backward only) 3e-2: every GEMM rounds both inputs to 8
//   significant bits (2^-9 relative, ~1.6e-3 L2 error per product); the
//   loss and gradients pass through ~10 GEMMs in sequence, and the errors
//   of independent roundings add: ~1.6e-2, bounded by 3e-2.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "engine/backend.h"
#include "engine/rng.h"
#include "model/llama.h"
#include "model/lora.h"
#include "tests/precision_scope.h"
#include "tests/tiny_config.h"
#include "train/switchlora_method.h"
#include "train/trainer.h"

using namespace switchlora;
using switchlora::test::PrecisionScope;
using switchlora::test::tiny_config;

namespace {

bool has_gpu() {
  static const bool yes = cuda_available();
  return yes;
}

constexpr double kFp32Model = 1e-4, kBf16Model = 3e-2, kFp32Train = 1e-4;

// ||got - want|| / ||want||; 0 when both are exactly zero, inf for a NaN.
double rel_l2(const float* got, const float* want, size_t n) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < n; i++) {
    if (!std::isfinite(got[i])) return INFINITY;
    diff += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
    norm += (double)want[i] * want[i];
  }
  if (norm == 0.0) return diff == 0.0 ? 0.0 : INFINITY;
  return std::sqrt(diff / norm);
}

double rel_l2(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  return rel_l2(got.data(), want.data(), got.size());
}

// Every trainable tensor of the two models' buffers (values or gradients,
// same layout on both), each within tol; names the tensor that broke it.
void check_per_tensor(const Llama& gpu_model, const std::vector<float>& gpu,
                      const std::vector<float>& cpu, double tol, const char* what) {
  REQUIRE(gpu.size() == cpu.size());
  int checked = 0;
  for (const Param& p : gpu_model.params.params) {
    if (!p.trainable) continue;
    const double err = rel_l2(gpu.data() + p.offset, cpu.data() + p.offset, p.numel());
    INFO(what << " of " << p.name << ": rel err " << err);
    CHECK(err <= tol);
    checked++;
  }
  CHECK(checked > 0);
}

// (B, T) random token ids for inputs and targets, from a seeded stream.
void random_tokens(int32_t* inputs, int32_t* targets, size_t n, int V, uint64_t key) {
  Rng rng{2024, 77, key * 1000003};
  for (size_t i = 0; i < n; i++) {
    inputs[i] = (int32_t)rng.below(V);
    targets[i] = (int32_t)rng.below(V);
  }
}

// One forward and backward of the same batch on both backends; the GPU at
// precision p, compared within tol.
void check_model_parity(const LoraOptions& lora, Precision p, double tol) {
  const LlamaConfig config = tiny_config();
  const int B = 2, T = config.max_sequence_length;
  std::vector<int32_t> in((size_t)B * T), tg((size_t)B * T);
  random_tokens(in.data(), tg.data(), in.size(), config.vocab_size, 1);
  Backend& gpu = backend_for("cuda");
  Llama cpu_model(config, lora, 42, cpu_backend());
  Llama gpu_model(config, lora, 42, gpu);
  if (lora.use_lora) {
    init_lora_adapters(cpu_model, 42);
    init_lora_adapters(gpu_model, 42);
  }
  // The init is drawn on the host from the seed, so both start from the
  // same values (up to the GEMM in LoRA's W = W0 - s B0 A0, done in fp32).
  CHECK(rel_l2(gpu_model.params.trainable.to_host(), cpu_model.params.trainable.to_host()) == 0.0);

  PrecisionScope scope(gpu, p);
  cpu_model.zero_grad();
  gpu_model.zero_grad();
  const float cpu_loss = cpu_model.forward(in.data(), tg.data(), B, T);
  const float gpu_loss = gpu_model.forward(in.data(), tg.data(), B, T);
  const double logits_err = rel_l2(gpu_model.logits_host(), cpu_model.logits_host());
  cpu_model.backward(1.0f);  // overwrites the logits with their gradient
  gpu_model.backward(1.0f);
  INFO("loss cpu " << cpu_loss << " gpu " << gpu_loss);
  CHECK(std::fabs((double)gpu_loss - cpu_loss) <= tol * std::fabs(cpu_loss));
  INFO("logits rel err " << logits_err);
  CHECK(logits_err <= tol);
  check_per_tensor(gpu_model, gpu_model.params.trainable_grad.to_host(),
                   cpu_model.params.trainable_grad.to_host(), tol, "gradient");
}

}  // namespace

TEST_CASE("full-rank model: loss, logits and every gradient match the CPU, fp32 and bf16" *
          doctest::skip(!has_gpu())) {
  const LoraOptions full;
  SUBCASE("fp32") { check_model_parity(full, Precision::kFp32, kFp32Model); }
  SUBCASE("bf16") { check_model_parity(full, Precision::kBf16, kBf16Model); }
}

TEST_CASE("LoRA model: loss, logits and every gradient match the CPU, fp32 and bf16" *
          doctest::skip(!has_gpu())) {
  const LoraOptions lora{true, 4, 2.0f, "switchlora"};
  SUBCASE("fp32") { check_model_parity(lora, Precision::kFp32, kFp32Model); }
  SUBCASE("bf16") { check_model_parity(lora, Precision::kBf16, kBf16Model); }
}

namespace {

enum class Kind { kFull, kLora, kSwitch };

TrainOptions train_options(Kind m, bool offload) {
  TrainOptions o;
  o.batch_size = 2;
  o.total_batch_size = 4;  // two micro-batches a step: accumulation runs too
  o.max_length = tiny_config().max_sequence_length;
  o.lr = 1e-2f;
  o.warmup_steps = 3;
  o.num_training_steps = 20;
  o.clip_grad_norm = 1.0f;  // clipping (sum_squares, scale) does act at this lr
  o.seed = 7;
  o.dtype = "fp32";
  o.lora = {m != Kind::kFull, 8, 1.0f, "switchlora"};
  o.method = m == Kind::kSwitch ? "switchlora" : m == Kind::kFull ? "full" : "lora";
  // interval(t) = 2 / 0.3^((t+1)/20) runs from 2.1 to 6.7 steps, so every
  // layer switches 1 to 4 of its 8 rows and columns each step, and the
  // fractional parts exercise the seeded rounding.
  o.sw.switch_lora_interval = 2;
  o.sw.switch_lora_descent_rate = 1.0f;
  o.sw.adam_warm_step = 1;
  o.sw.num_training_steps = o.num_training_steps;
  o.sw.seed = 7;
  o.sw.offload_candidates = offload;
  return o;
}

// 20 steps of Trainer::train_step on both backends with the same batches.
void check_training_parity(Kind m, bool offload) {
  const TrainOptions o = train_options(m, offload);
  const LlamaConfig config = tiny_config();
  SingleProcess comm;
  Trainer cpu_tr(o, config, comm, cpu_backend());
  Trainer gpu_tr(o, config, comm, backend_for("cuda"));
  REQUIRE(gpu_tr.grad_accum_steps() == 2);

  const size_t n = (size_t)o.batch_size * o.max_length;
  uint64_t cpu_calls = 0, gpu_calls = 0;  // micro-batch k is the same on both
  const auto cpu_batch = [&](int32_t* in, int32_t* tg) {
    random_tokens(in, tg, n, config.vocab_size, 100 + cpu_calls++);
  };
  const auto gpu_batch = [&](int32_t* in, int32_t* tg) {
    random_tokens(in, tg, n, config.vocab_size, 100 + gpu_calls++);
  };
  int total_switched = 0;
  for (int step = 0; step < o.num_training_steps; step++) {
    CAPTURE(step);
    const StepStats c = cpu_tr.train_step(cpu_batch);
    const StepStats g = gpu_tr.train_step(gpu_batch);
    INFO("loss cpu " << c.loss << " gpu " << g.loss);
    CHECK(std::fabs((double)g.loss - c.loss) <= kFp32Train * std::fabs(c.loss));
    CHECK(g.method.value("switched", 0) == c.method.value("switched", 0));  // decided on the host: must be identical
    total_switched += c.method.value("switched", 0);
  }
  if (m == Kind::kSwitch) CHECK(total_switched > 100);  // switching did happen
  check_per_tensor(gpu_tr.model, gpu_tr.model.params.trainable.to_host(),
                   cpu_tr.model.params.trainable.to_host(), kFp32Train, "parameter");
  if (m != Kind::kFull) {
    // The frozen W: SwitchLoRA's switches correct it on the backend.
    const double w_err = rel_l2(gpu_tr.model.params.frozen.to_host(),
                                cpu_tr.model.params.frozen.to_host());
    INFO("frozen weights rel err " << w_err);
    CHECK(w_err <= kFp32Train);
  }
  if (m == Kind::kSwitch) {
    // Switched-out rows and columns went back into the pools.
    const double c_err = rel_l2(find_switcher(*gpu_tr.method)->candidates_host(),
                                find_switcher(*cpu_tr.method)->candidates_host());
    INFO("candidates rel err " << c_err);
    CHECK(c_err <= kFp32Train);
  }
}

}  // namespace

TEST_CASE("20 training steps on the GPU follow the CPU: full-rank" * doctest::skip(!has_gpu())) {
  check_training_parity(Kind::kFull, true);
}

TEST_CASE("20 training steps on the GPU follow the CPU: LoRA" * doctest::skip(!has_gpu())) {
  check_training_parity(Kind::kLora, true);
}

TEST_CASE("20 training steps on the GPU follow the CPU: SwitchLoRA, candidates in pinned host memory or on the GPU" *
          doctest::skip(!has_gpu())) {
  SUBCASE("offloaded") { check_training_parity(Kind::kSwitch, true); }
  SUBCASE("on the GPU") { check_training_parity(Kind::kSwitch, false); }
}

TEST_CASE("GPU training is deterministic and resumes exactly: same bits twice, and after a checkpoint" *
          doctest::skip(!has_gpu())) {
  // No kernel adds with atomics and cuBLAS repeats itself on one GPU, so two
  // runs, or a run split by a checkpoint, must agree bit for bit (in bf16 too).
  for (const char* dtype : {"fp32", "bf16"}) {
    CAPTURE(dtype);
    TrainOptions o = train_options(Kind::kSwitch, true);
    o.dtype = dtype;
    const LlamaConfig config = tiny_config();
    SingleProcess comm;
    Backend& gpu = backend_for("cuda");
    const size_t n = (size_t)o.batch_size * o.max_length;
    auto run = [&](Trainer& tr, int steps, uint64_t& calls) {
      std::vector<float> losses;
      const auto batch = [&](int32_t* in, int32_t* tg) { random_tokens(in, tg, n, config.vocab_size, calls++); };
      for (int s = 0; s < steps; s++) losses.push_back(tr.train_step(batch).loss);
      return losses;
    };
    uint64_t calls_a = 0, calls_b = 0;
    Trainer a(o, config, comm, gpu), b(o, config, comm, gpu);
    const std::vector<float> la = run(a, 10, calls_a);
    std::vector<float> lb = run(b, 6, calls_b);
    Checkpoint ck;
    b.save_state(ck);
    Trainer resumed(o, config, comm, gpu);
    resumed.load_state(ck, "in-memory checkpoint");
    const std::vector<float> rest = run(resumed, 4, calls_b);
    lb.insert(lb.end(), rest.begin(), rest.end());
    CHECK(la == lb);
    CHECK(a.model.params.trainable.to_host() == resumed.model.params.trainable.to_host());
    CHECK(a.model.params.frozen.to_host() == resumed.model.params.frozen.to_host());
    CHECK(find_switcher(*a.method)->candidates_host() == find_switcher(*resumed.method)->candidates_host());
    gpu.set_precision(Precision::kFp32);
  }
}
