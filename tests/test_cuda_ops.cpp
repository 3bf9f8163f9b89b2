// The CUDA backend against the CPU backend, op by op (engine/cuda/ops.h vs
// engine/ops.h): same random inputs, both ops run, outputs compared.
//
// Outputs start POISONED with NaN, so an element a kernel forgets to write
// fails the comparison; gradient buffers start at the same random values on
// both sides, so a kernel that overwrites instead of accumulating (+=) fails
// too. Without a GPU every case is skipped (and ctest reports "Skipped").
//
// Errors are max |gpu - cpu| / max |cpu| over a tensor: relative to the
// tensor's scale, so that elements that happen to be near zero (where a
// relative error means nothing) do not decide the outcome. Bounds:
//   fp32 1e-5: both sides compute in fp32 and differ only in the order of
//     their sums (tree reductions and cuBLAS's blocking against sequential
//     loops and Eigen's), a few ulps (6e-8 each) of the largest terms;
//   TF32 1e-3: inputs rounded to 10 mantissa bits (relative 2^-11 = 5e-4
//     each), accumulated in fp32;
//   bf16 1e-2: inputs rounded to 7 mantissa bits (2^-8 = 4e-3 each).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <doctest/doctest.h>

#include "engine/ops.h"
#include "engine/rng.h"
#include "tests/gradcheck.h"

#if SWITCHLORA_CUDA
#include "engine/cuda/ops.h"
#include "optim/adamw.h"

using namespace switchlora;
using test::randn;

namespace {

bool has_gpu() {
  static const bool yes = cuda::device_count() > 0;
  return yes;
}

constexpr double kFp32 = 1e-5, kTf32 = 1e-3, kBf16 = 1e-2;
const float kNaN = std::numeric_limits<float>::quiet_NaN();

// A device copy of a host array, freed on scope exit.
template <typename T>
struct Dev {
  T* ptr = nullptr;
  size_t n = 0;
  explicit Dev(const std::vector<T>& h) : n(h.size()) {
    ptr = (T*)cuda::device_alloc(sizeof(T) * (n > 0 ? n : 1));
    if (n > 0) cuda::copy_to_device(ptr, h.data(), sizeof(T) * n);
  }
  ~Dev() { cuda::device_free(ptr); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  std::vector<T> host() const {
    std::vector<T> h(n);
    if (n > 0) cuda::copy_to_host(h.data(), ptr, sizeof(T) * n);
    return h;
  }
};

std::vector<float> nans(size_t n) { return std::vector<float>(n, kNaN); }

// max |got - want| / max |want|; a NaN or inf in `got` gives +inf.
double rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  double diff = 0.0, scale = 0.0;
  for (size_t i = 0; i < got.size(); i++) {
    if (!std::isfinite(got[i])) return INFINITY;
    diff = std::max(diff, std::fabs((double)got[i] - want[i]));
    scale = std::max(scale, std::fabs((double)want[i]));
  }
  return scale > 0.0 ? diff / scale : diff;
}

// The GPU result of `d` against the CPU's `want`, within `tol`.
#define CHECK_CLOSE(d, want, tol)             \
  do {                                        \
    INFO("buffer: " #d);                      \
    CHECK(rel_err((d).host(), (want)) <= (tol)); \
  } while (0)

std::vector<int32_t> random_ids(size_t n, int V, Rng& rng) {
  std::vector<int32_t> ids(n);
  for (int32_t& id : ids) id = (int32_t)rng.below(V);
  return ids;
}

}  // namespace

TEST_CASE("matmul matches the CPU for every transpose pair, alpha and beta" *
          doctest::skip(!has_gpu())) {
  Rng rng{1, 400, 0};
  const int M = 37, N = 53, K = 61;  // odd sizes: no tile divides them
  for (int tA = 0; tA < 2; tA++)
    for (int tB = 0; tB < 2; tB++)
      for (float beta : {0.0f, 1.0f, 0.5f}) {
        CAPTURE(tA);
        CAPTURE(tB);
        CAPTURE(beta);
        auto A = randn((size_t)M * K, rng), B = randn((size_t)K * N, rng);
        // beta = 0 must ignore C entirely, NaN included.
        auto C = beta == 0.0f ? nans((size_t)M * N) : randn((size_t)M * N, rng);
        Dev<float> dA(A), dB(B), dC(C);
        cpu::matmul(C.data(), A.data(), B.data(), M, N, K, tA, tB, 0.75f, beta);
        cuda::matmul(dC.ptr, dA.ptr, dB.ptr, M, N, K, tA, tB, 0.75f, beta);
        CHECK_CLOSE(dC, C, kFp32);
      }
}

TEST_CASE("matmul_backward and the linear layer accumulate like the CPU" *
          doctest::skip(!has_gpu())) {
  Rng rng{2, 400, 0};
  const int M = 29, N = 41, K = 35;
  for (int tA = 0; tA < 2; tA++)
    for (int tB = 0; tB < 2; tB++) {
      CAPTURE(tA);
      CAPTURE(tB);
      auto A = randn((size_t)M * K, rng), B = randn((size_t)K * N, rng);
      auto dC = randn((size_t)M * N, rng);
      auto gA = randn(A.size(), rng), gB = randn(B.size(), rng);  // earlier gradients
      Dev<float> a(A), b(B), dc(dC), ga(gA), gb(gB);
      cpu::matmul_backward(gA.data(), gB.data(), dC.data(), A.data(), B.data(), M, N, K, tA, tB);
      cuda::matmul_backward(ga.ptr, gb.ptr, dc.ptr, a.ptr, b.ptr, M, N, K, tA, tB);
      CHECK_CLOSE(ga, gA, kFp32);
      CHECK_CLOSE(gb, gB, kFp32);
    }

  const int Nr = 19, in = 48, out = 33;
  auto x = randn((size_t)Nr * in, rng), W = randn((size_t)out * in, rng);
  auto dy = randn((size_t)Nr * out, rng);
  auto y = nans((size_t)Nr * out);
  auto dx = randn(x.size(), rng), dW = randn(W.size(), rng);
  Dev<float> dx_d(dx), dW_d(dW), y_d(y), x_d(x), W_d(W), dy_d(dy);
  cpu::linear_forward(y.data(), x.data(), W.data(), Nr, in, out);
  cuda::linear_forward(y_d.ptr, x_d.ptr, W_d.ptr, Nr, in, out);
  CHECK_CLOSE(y_d, y, kFp32);
  cpu::linear_backward(dx.data(), dW.data(), dy.data(), x.data(), W.data(), Nr, in, out);
  cuda::linear_backward(dx_d.ptr, dW_d.ptr, dy_d.ptr, x_d.ptr, W_d.ptr, Nr, in, out);
  CHECK_CLOSE(dx_d, dx, kFp32);
  CHECK_CLOSE(dW_d, dW, kFp32);
  // A null gradient is skipped: dW alone changes.
  cpu::linear_backward(nullptr, dW.data(), dy.data(), x.data(), W.data(), Nr, in, out);
  cuda::linear_backward(nullptr, dW_d.ptr, dy_d.ptr, x_d.ptr, W_d.ptr, Nr, in, out);
  CHECK_CLOSE(dW_d, dW, kFp32);
  CHECK_CLOSE(dx_d, dx, kFp32);
}

TEST_CASE("TF32 matmul is within TF32 rounding of the fp32 CPU product" *
          doctest::skip(!has_gpu())) {
  Rng rng{3, 400, 0};
  const int M = 128, N = 96, K = 256;
  auto A = randn((size_t)M * K, rng), B = randn((size_t)N * K, rng);
  auto C = nans((size_t)M * N);
  Dev<float> dA(A), dB(B), dC(C);
  cpu::matmul(C.data(), A.data(), B.data(), M, N, K, false, true);
  cuda::set_tf32(true);
  cuda::matmul(dC.ptr, dA.ptr, dB.ptr, M, N, K, false, true);
  cuda::set_tf32(false);
  CHECK_CLOSE(dC, C, kTf32);
}

TEST_CASE("fp32 -> bf16 rounds to nearest even like the host, bf16 -> fp32 is exact" *
          doctest::skip(!has_gpu())) {
  Rng rng{4, 400, 0};
  auto x = randn(1000, rng, 3.0f);
  // Ties (low 16 bits 0x8000) both ways, an overflow to inf, a subnormal.
  for (uint32_t bits : {0x3f808000u, 0x3f818000u, 0x7f7fffffu, 0x00000001u}) {
    float f;
    std::memcpy(&f, &bits, 4);
    x.push_back(f);
  }
  Dev<float> dx(x), back(nans(x.size()));
  Dev<__nv_bfloat16> dh(std::vector<__nv_bfloat16>(x.size()));
  cuda::float_to_bf16(dh.ptr, dx.ptr, (int64_t)x.size());
  cuda::bf16_to_float(back.ptr, dh.ptr, (int64_t)x.size());
  auto h = dh.host();
  auto f = back.host();
  int wrong = 0;
  for (size_t i = 0; i < x.size(); i++) {
    float want = __bfloat162float(__float2bfloat16(x[i]));  // the host's rounding
    if (std::memcmp(&f[i], &want, 4) != 0) wrong++;
  }
  CHECK(wrong == 0);
}

TEST_CASE("bf16 matmul accumulates bf16 products in fp32" * doctest::skip(!has_gpu())) {
  Rng rng{5, 400, 0};
  const int M = 64, N = 80, K = 256;
  for (int tA = 0; tA < 2; tA++)
    for (int tB = 0; tB < 2; tB++) {
      CAPTURE(tA);
      CAPTURE(tB);
      auto A = randn((size_t)M * K, rng), B = randn((size_t)K * N, rng);
      Dev<float> dA(A), dB(B), dC(nans((size_t)M * N));
      Dev<__nv_bfloat16> hA(std::vector<__nv_bfloat16>(A.size())), hB(std::vector<__nv_bfloat16>(B.size()));
      cuda::float_to_bf16(hA.ptr, dA.ptr, (int64_t)A.size());
      cuda::float_to_bf16(hB.ptr, dB.ptr, (int64_t)B.size());
      cuda::matmul_bf16(dC.ptr, hA.ptr, hB.ptr, M, N, K, tA, tB);
      // Against the exact inputs: the bf16 rounding of the inputs.
      std::vector<float> C((size_t)M * N);
      cpu::matmul(C.data(), A.data(), B.data(), M, N, K, tA, tB);
      CHECK_CLOSE(dC, C, kBf16);
      // Against the rounded inputs: only the accumulation differs. The products
      // of bf16 numbers are exact in fp32; tensor cores do not promise IEEE
      // rounding at each add of the fp32 sum, so allow a few more ulps of
      // K = 256 terms than kFp32 does: 1e-4.
      for (float& a : A) a = __bfloat162float(__float2bfloat16(a));
      for (float& b : B) b = __bfloat162float(__float2bfloat16(b));
      cpu::matmul(C.data(), A.data(), B.data(), M, N, K, tA, tB);
      CHECK_CLOSE(dC, C, 1e-4);
    }
}

TEST_CASE("embedding forward gathers and backward sums repeated tokens" *
          doctest::skip(!has_gpu())) {
  Rng rng{6, 400, 0};
  const int N = 300, C = 70, V = 20;  // 300 rows over 20 ids: every id repeats
  auto tokens = random_ids(N, V, rng);
  auto wte = randn((size_t)V * C, rng), dout = randn((size_t)N * C, rng);
  auto out = nans((size_t)N * C), dwte = randn(wte.size(), rng);
  Dev<int32_t> t_d(tokens);
  Dev<float> wte_d(wte), dout_d(dout), out_d(out), dwte_d(dwte);
  cpu::embedding_forward(out.data(), tokens.data(), wte.data(), N, C);
  cuda::embedding_forward(out_d.ptr, t_d.ptr, wte_d.ptr, N, C);
  CHECK_CLOSE(out_d, out, 0.0);  // a copy: exact
  cpu::embedding_backward(dwte.data(), dout.data(), tokens.data(), N, C);
  cuda::embedding_backward(dwte_d.ptr, dout_d.ptr, t_d.ptr, N, C);
  CHECK_CLOSE(dwte_d, dwte, kFp32);
}

TEST_CASE("rmsnorm forward and backward match the CPU" * doctest::skip(!has_gpu())) {
  Rng rng{7, 400, 0};
  // C = 300: not a multiple of the block (256) or of a warp; N = 67 rows
  // leave the dg kernel's 16 row-strides unequal.
  for (int C : {300, 4096}) {
    CAPTURE(C);
    const int N = 67;
    auto x = randn((size_t)N * C, rng), g = randn(C, rng, 0.1f), dy = randn(x.size(), rng);
    for (float& v : g) v += 1.0f;
    auto y = nans(x.size()), rstd = nans(N);
    auto dx = randn(x.size(), rng), dg = randn(C, rng);
    Dev<float> x_d(x), g_d(g), dy_d(dy), y_d(y), rstd_d(rstd), dx_d(dx), dg_d(dg);
    cpu::rmsnorm_forward(y.data(), rstd.data(), x.data(), g.data(), N, C, 1e-5f);
    cuda::rmsnorm_forward(y_d.ptr, rstd_d.ptr, x_d.ptr, g_d.ptr, N, C, 1e-5f);
    CHECK_CLOSE(y_d, y, kFp32);
    CHECK_CLOSE(rstd_d, rstd, kFp32);
    cpu::rmsnorm_backward(dx.data(), dg.data(), dy.data(), x.data(), g.data(), rstd.data(), N, C);
    cuda::rmsnorm_backward(dx_d.ptr, dg_d.ptr, dy_d.ptr, x_d.ptr, g_d.ptr, rstd_d.ptr, N, C);
    CHECK_CLOSE(dx_d, dx, kFp32);
    CHECK_CLOSE(dg_d, dg, kFp32);
  }
}

TEST_CASE("rope forward and backward match the CPU, long sequences included" *
          doctest::skip(!has_gpu())) {
  Rng rng{8, 400, 0};
  struct Shape { int B, T, NH, HS; };
  // T = 4096: angles of thousands of radians, where float angles would fail.
  for (Shape s : {Shape{2, 37, 3, 16}, Shape{1, 4096, 2, 64}}) {
    CAPTURE(s.T);
    const size_t n = (size_t)s.B * s.T * s.NH * s.HS;
    auto x = randn(n, rng), dout = randn(n, rng);
    auto out = nans(n), dx = randn(n, rng);
    Dev<float> x_d(x), dout_d(dout), out_d(out), dx_d(dx);
    cpu::rope_forward(out.data(), x.data(), s.B, s.T, s.NH, s.HS, 10000.0f);
    cuda::rope_forward(out_d.ptr, x_d.ptr, s.B, s.T, s.NH, s.HS, 10000.0f);
    CHECK_CLOSE(out_d, out, kFp32);
    cpu::rope_backward(dx.data(), dout.data(), s.B, s.T, s.NH, s.HS, 10000.0f);
    cuda::rope_backward(dx_d.ptr, dout_d.ptr, s.B, s.T, s.NH, s.HS, 10000.0f);
    CHECK_CLOSE(dx_d, dx, kFp32);
  }
}

TEST_CASE("attention forward and backward match the CPU" * doctest::skip(!has_gpu())) {
  Rng rng{9, 400, 0};
  struct Shape { int B, T, NH, HS; };
  // T not a multiple of the tiles (8 queries, 32 keys); HS = 48 leaves lanes
  // idle in the last 32-wide slice, HS = 128 is the kernel's limit; T = 1 is
  // a lone query.
  for (Shape s : {Shape{2, 70, 3, 16}, Shape{1, 129, 2, 128}, Shape{2, 45, 2, 48},
                  Shape{1, 1, 1, 8}, Shape{1, 300, 1, 64}}) {
    CAPTURE(s.T);
    CAPTURE(s.HS);
    const size_t n = (size_t)s.B * s.T * s.NH * s.HS, nl = (size_t)s.B * s.NH * s.T;
    auto q = randn(n, rng), k = randn(n, rng), v = randn(n, rng), dout = randn(n, rng);
    auto out = nans(n), lse = nans(nl);
    auto dq = randn(n, rng), dk = randn(n, rng), dv = randn(n, rng);
    Dev<float> q_d(q), k_d(k), v_d(v), dout_d(dout), out_d(out), lse_d(lse);
    Dev<float> dq_d(dq), dk_d(dk), dv_d(dv);
    cpu::attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), s.B, s.T, s.NH, s.HS);
    cuda::attention_forward(out_d.ptr, lse_d.ptr, q_d.ptr, k_d.ptr, v_d.ptr, s.B, s.T, s.NH, s.HS);
    CHECK_CLOSE(out_d, out, kFp32);
    CHECK_CLOSE(lse_d, lse, kFp32);
    cpu::attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(),
                            v.data(), out.data(), lse.data(), s.B, s.T, s.NH, s.HS);
    cuda::attention_backward(dq_d.ptr, dk_d.ptr, dv_d.ptr, dout_d.ptr, q_d.ptr, k_d.ptr, v_d.ptr,
                             out_d.ptr, lse_d.ptr, s.B, s.T, s.NH, s.HS);
    CHECK_CLOSE(dq_d, dq, kFp32);
    CHECK_CLOSE(dk_d, dk, kFp32);
    CHECK_CLOSE(dv_d, dv, kFp32);
    // Null gradients are skipped: dk alone changes.
    cpu::attention_backward(nullptr, dk.data(), nullptr, dout.data(), q.data(), k.data(),
                            v.data(), out.data(), lse.data(), s.B, s.T, s.NH, s.HS);
    cuda::attention_backward(nullptr, dk_d.ptr, nullptr, dout_d.ptr, q_d.ptr, k_d.ptr, v_d.ptr,
                             out_d.ptr, lse_d.ptr, s.B, s.T, s.NH, s.HS);
    CHECK_CLOSE(dq_d, dq, kFp32);
    CHECK_CLOSE(dk_d, dk, kFp32);
    CHECK_CLOSE(dv_d, dv, kFp32);
  }
}

TEST_CASE("swiglu forward and backward match the CPU" * doctest::skip(!has_gpu())) {
  Rng rng{10, 400, 0};
  const int64_t N = 10007;
  auto gate = randn(N, rng, 3.0f), up = randn(N, rng), dout = randn(N, rng);
  auto out = nans(N), dgate = randn(N, rng), dup = randn(N, rng);
  Dev<float> g_d(gate), u_d(up), do_d(dout), out_d(out), dg_d(dgate), du_d(dup);
  cpu::swiglu_forward(out.data(), gate.data(), up.data(), N);
  cuda::swiglu_forward(out_d.ptr, g_d.ptr, u_d.ptr, N);
  CHECK_CLOSE(out_d, out, kFp32);
  cpu::swiglu_backward(dgate.data(), dup.data(), dout.data(), gate.data(), up.data(), N);
  cuda::swiglu_backward(dg_d.ptr, du_d.ptr, do_d.ptr, g_d.ptr, u_d.ptr, N);
  CHECK_CLOSE(dg_d, dgate, kFp32);
  CHECK_CLOSE(du_d, dup, kFp32);
  cpu::swiglu_backward(nullptr, dup.data(), dout.data(), gate.data(), up.data(), N);
  cuda::swiglu_backward(nullptr, du_d.ptr, do_d.ptr, g_d.ptr, u_d.ptr, N);
  CHECK_CLOSE(dg_d, dgate, kFp32);
  CHECK_CLOSE(du_d, dup, kFp32);
}

TEST_CASE("residual forward (in place too) and backward match the CPU" *
          doctest::skip(!has_gpu())) {
  Rng rng{11, 400, 0};
  const int64_t N = 5003;
  auto a = randn(N, rng), b = randn(N, rng), dout = randn(N, rng);
  auto out = nans(N), da = randn(N, rng), db = randn(N, rng);
  Dev<float> a_d(a), b_d(b), do_d(dout), out_d(out), da_d(da), db_d(db);
  cpu::residual_forward(out.data(), a.data(), b.data(), N);
  cuda::residual_forward(out_d.ptr, a_d.ptr, b_d.ptr, N);
  CHECK_CLOSE(out_d, out, 0.0);  // one rounded add: exact
  cpu::residual_forward(a.data(), a.data(), b.data(), N);
  cuda::residual_forward(a_d.ptr, a_d.ptr, b_d.ptr, N);
  CHECK_CLOSE(a_d, a, 0.0);
  cpu::residual_backward(da.data(), db.data(), dout.data(), N);
  cuda::residual_backward(da_d.ptr, db_d.ptr, do_d.ptr, N);
  CHECK_CLOSE(da_d, da, 0.0);
  CHECK_CLOSE(db_d, db, 0.0);
}

TEST_CASE("cross-entropy forward and backward match the CPU" * doctest::skip(!has_gpu())) {
  Rng rng{12, 400, 0};
  struct Shape { int N, V; };
  for (Shape s : {Shape{13, 1000}, Shape{5, 32100}}) {
    CAPTURE(s.V);
    auto logits = randn((size_t)s.N * s.V, rng, 4.0f);
    auto targets = random_ids(s.N, s.V, rng);
    auto losses = nans(s.N), lse = nans(s.N), dlogits = randn(logits.size(), rng);
    Dev<float> lg_d(logits), losses_d(losses), lse_d(lse), dl_d(dlogits);
    Dev<int32_t> t_d(targets);
    float mean = cpu::cross_entropy_forward(losses.data(), lse.data(), logits.data(),
                                            targets.data(), s.N, s.V);
    float mean_d = cuda::cross_entropy_forward(losses_d.ptr, lse_d.ptr, lg_d.ptr, t_d.ptr, s.N, s.V);
    CHECK(std::fabs(mean_d - mean) <= kFp32 * std::fabs(mean));
    CHECK_CLOSE(losses_d, losses, kFp32);
    CHECK_CLOSE(lse_d, lse, kFp32);
    const float scale = 1.0f / s.N;
    cpu::cross_entropy_backward(dlogits.data(), logits.data(), lse.data(), targets.data(), scale, s.N, s.V);
    cuda::cross_entropy_backward(dl_d.ptr, lg_d.ptr, lse_d.ptr, t_d.ptr, scale, s.N, s.V);
    CHECK_CLOSE(dl_d, dlogits, kFp32);
  }
}

TEST_CASE("AdamW step matches the CPU: per-tensor, per-row and per-column counters, frozen vectors" *
          doctest::skip(!has_gpu())) {
  Rng rng{13, 400, 0};
  const AdamWConfig config{0.9f, 0.999f, 1e-8f, 0.1f};
  // A norm gain (per tensor), a LoRA A (per row), a LoRA B (per column).
  std::vector<OptimParam> params(3);
  params[0] = {"g", 0, 1, 70, StepCounter::kPerTensor, nullptr};
  params[1] = {"A", 70, 4, 50, StepCounter::kPerRow, nullptr};
  params[2] = {"B", 270, 60, 4, StepCounter::kPerColumn, nullptr};
  const size_t numel = 510;
  std::vector<uint8_t> frozen_A = {0, 1, 0, 0}, frozen_B = {0, 0, 1, 1};
  params[1].frozen = frozen_A.data();
  params[2].frozen = frozen_B.data();
  AdamW cpu_opt(config, params, numel);

  auto p = randn(numel, rng);
  Dev<float> p_d(p), m_d(std::vector<float>(numel, 0.0f)), v_d(std::vector<float>(numel, 0.0f));
  Dev<int64_t> k0(std::vector<int64_t>(1, 0)), k1(std::vector<int64_t>(4, 0)), k2(std::vector<int64_t>(4, 0));
  Dev<uint8_t> fB(frozen_B);
  int64_t* counters[3] = {k0.ptr, k1.ptr, k2.ptr};
  for (int step = 0; step < 3; step++) {
    if (step == 2) frozen_A[1] = 0;  // thawed: row 1 takes its first step
    Dev<uint8_t> fA(frozen_A);
    const uint8_t* frozen[3] = {nullptr, fA.ptr, fB.ptr};
    auto g = randn(numel, rng);
    Dev<float> g_d(g);
    cpu_opt.step(p.data(), g.data(), 1e-2f);
    for (int i = 0; i < 3; i++)
      cuda::adamw_update(p_d.ptr, m_d.ptr, v_d.ptr, g_d.ptr, counters[i], frozen[i], params[i],
                         config, 1e-2f);
    CHECK_CLOSE(p_d, p, kFp32);
    CHECK_CLOSE(m_d, cpu_opt.m(), kFp32);
    CHECK_CLOSE(v_d, cpu_opt.v(), kFp32);
  }
  // Counters: the CPU keeps them flat, tensor after tensor.
  std::vector<int64_t> k;
  for (const Dev<int64_t>* d : {&k0, &k1, &k2})
    for (int64_t c : d->host()) k.push_back(c);
  CHECK(k == cpu_opt.counters());
}

TEST_CASE("switch updates of W match the rank-1 formulas" * doctest::skip(!has_gpu())) {
  Rng rng{14, 400, 0};
  const int out = 45, in = 70, r = 8, slot = 5;
  const float s = 0.25f;
  auto W = randn((size_t)out * in, rng), B = randn((size_t)out * r, rng), A = randn((size_t)r * in, rng);
  auto cA = randn(in, rng), cB = randn(out, rng);
  Dev<float> W_d(W), B_d(B), A_d(A), cA_d(cA), cB_d(cB);
  // The CPU loops of SwitchLora::switch_A / switch_B (model/switchlora.cpp).
  for (int o = 0; o < out; o++)
    for (int j = 0; j < in; j++)
      W[(size_t)o * in + j] += s * B[(size_t)o * r + slot] * (A[(size_t)slot * in + j] - cA[j]);
  cuda::switch_A_update(W_d.ptr, B_d.ptr, A_d.ptr, cA_d.ptr, s, slot, out, in, r);
  CHECK_CLOSE(W_d, W, kFp32);
  for (int o = 0; o < out; o++)
    for (int j = 0; j < in; j++)
      W[(size_t)o * in + j] += s * (B[(size_t)o * r + slot] - cB[o]) * A[(size_t)slot * in + j];
  cuda::switch_B_update(W_d.ptr, B_d.ptr, A_d.ptr, cB_d.ptr, s, slot, out, in, r);
  CHECK_CLOSE(W_d, W, kFp32);
}

#else

TEST_CASE("CUDA ops: this build has no CUDA backend" * doctest::skip()) {}

#endif
