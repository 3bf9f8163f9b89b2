// The CUDA backend against the CPU backend, op by op (engine/cuda/ops.h vs
// engine/ops.h): same random inputs, both ops run, outputs compared; then
// CudaBackend's own memory calls and its gemm at each precision.
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

#include "engine/backend.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "optim/adamw.h"
#include "tests/gradcheck.h"
#include "tests/precision_scope.h"

#if SWITCHLORA_CUDA
#include "engine/cuda/ops.h"

using namespace switchlora;
using test::PrecisionScope;
using test::randn;

namespace {

bool has_gpu() {
  static const bool yes = cuda::device_count() > 0;
  return yes;
}

constexpr double kFp32 = 1e-5, kTf32 = 1e-3, kBf16 = 1e-2;
const float kNaN = std::numeric_limits<float>::quiet_NaN();

// The process's CUDA backend (only asked for when a GPU is there).
Backend& gpu() { return backend_for("cuda"); }

// The state the ops that take one keep between calls (the backend has its own).
cuda::Workspace& workspace() {
  static cuda::Workspace ws;
  return ws;
}

// A device copy of a host array in CudaBackend memory, freed on scope exit.
template <typename T>
struct Dev {
  Buffer<T> buf;
  T* ptr;
  explicit Dev(const std::vector<T>& h) : buf(gpu(), h.size()), ptr(buf.data()) {
    buf.from_host(h);
  }
  std::vector<T> host() const { return buf.to_host(); }
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
        cuda::matmul(workspace(), dC.ptr, dA.ptr, dB.ptr, M, N, K, tA, tB, 0.75f, beta,
                     Precision::kFp32);
        CHECK_CLOSE(dC, C, kFp32);
      }
}

TEST_CASE("the backend's linear layer matches the CPU and accumulates its gradients" *
          doctest::skip(!has_gpu())) {
  Rng rng{2, 400, 0};
  const int Nr = 19, in = 48, out = 33;
  auto x = randn((size_t)Nr * in, rng), W = randn((size_t)out * in, rng);
  auto dy = randn((size_t)Nr * out, rng);
  auto y = nans((size_t)Nr * out);
  auto dx = randn(x.size(), rng), dW = randn(W.size(), rng);
  Dev<float> dx_d(dx), dW_d(dW), y_d(y), x_d(x), W_d(W), dy_d(dy);
  cpu::linear_forward(y.data(), x.data(), W.data(), Nr, in, out);
  gpu().linear_forward(y_d.ptr, x_d.ptr, W_d.ptr, Nr, in, out);
  CHECK_CLOSE(y_d, y, kFp32);
  cpu::linear_backward(dx.data(), dW.data(), dy.data(), x.data(), W.data(), Nr, in, out);
  gpu().linear_backward(dx_d.ptr, dW_d.ptr, dy_d.ptr, x_d.ptr, W_d.ptr, Nr, in, out);
  CHECK_CLOSE(dx_d, dx, kFp32);
  CHECK_CLOSE(dW_d, dW, kFp32);
  // A null gradient is skipped: dW alone changes.
  cpu::linear_backward(nullptr, dW.data(), dy.data(), x.data(), W.data(), Nr, in, out);
  gpu().linear_backward(nullptr, dW_d.ptr, dy_d.ptr, x_d.ptr, W_d.ptr, Nr, in, out);
  CHECK_CLOSE(dW_d, dW, kFp32);
  CHECK_CLOSE(dx_d, dx, kFp32);
}

TEST_CASE("backend gemm at fp32, TF32 and bf16 stays within each precision's bound; "
          "matmul at that precision() gives the same bits" * doctest::skip(!has_gpu())) {
  Rng rng{3, 400, 0};
  // Large enough that cuBLAS picks its tensor-core kernels, odd N so that no
  // tile divides it. The bounds (kFp32, kTf32, kBf16 above) are against the
  // CPU's fp32 product of the unrounded inputs. They assume cuBLAS rounds the
  // inputs to nearest; a tensor core fed fp32 straight from memory may
  // truncate instead, which shrinks every product by ~2 x 0.7 x 2^-11 = 7e-4
  // (TF32) on average, so a TF32 error just under or over 1e-3 means
  // truncation, not a wrong compute type (that would give ~1e-7 or ~1e-2).
  const int M = 128, N = 97, K = 256;
  struct Case { Precision p; double tol; const char* name; };
  for (Case c : {Case{Precision::kFp32, kFp32, "fp32"}, Case{Precision::kTf32, kTf32, "tf32"},
                 Case{Precision::kBf16, kBf16, "bf16"}})
    for (int tA = 0; tA < 2; tA++)
      for (int tB = 0; tB < 2; tB++) {
        CAPTURE(c.name);
        CAPTURE(tA);
        CAPTURE(tB);
        auto A = randn((size_t)M * K, rng), B = randn((size_t)K * N, rng);
        auto C = nans((size_t)M * N);
        Dev<float> dA(A), dB(B), dC(C), dC_matmul(C);
        cpu::matmul(C.data(), A.data(), B.data(), M, N, K, tA, tB);
        gpu().gemm(dC.ptr, dA.ptr, dB.ptr, M, N, K, tA, tB, 1.0f, 0.0f, c.p);
        CHECK(gpu().precision() == Precision::kFp32);  // gemm leaves it alone
        const double err = rel_err(dC.host(), C);
        MESSAGE(c.name << " tA=" << tA << " tB=" << tB << ": rel err " << err);
        CHECK(err <= c.tol);
        {
          PrecisionScope scope(gpu(), c.p);
          gpu().matmul(dC_matmul.ptr, dA.ptr, dB.ptr, M, N, K, tA, tB);
        }
        // The same cuBLAS call on the same GPU: the same bits.
        CHECK(dC_matmul.host() == dC.host());
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
  cuda::embedding_backward(workspace(), dwte_d.ptr, dout_d.ptr, t_d.ptr, N, C);
  CHECK_CLOSE(dwte_d, dwte, kFp32);
}

TEST_CASE("embedding backward is deterministic: the same bits on every run, long runs of one token too" *
          doctest::skip(!has_gpu())) {
  Rng rng{6, 401, 0};
  const int N = 20000, C = 33, V = 3;  // ~6700 rows per token: long sorted segments
  auto tokens = random_ids(N, V, rng);
  tokens[17] = -1;                     // a negative id: the kernel skips its row
  auto dout = randn((size_t)N * C, rng);
  // The CPU op throws for a negative id, so its reference sums the other rows.
  std::vector<int32_t> kept_tokens;
  std::vector<float> kept_dout;
  for (int n = 0; n < N; n++) {
    if (tokens[n] < 0) continue;
    kept_tokens.push_back(tokens[n]);
    kept_dout.insert(kept_dout.end(), dout.begin() + (size_t)n * C, dout.begin() + (size_t)(n + 1) * C);
  }
  std::vector<float> dwte((size_t)V * C, 0.0f);
  cpu::embedding_backward(dwte.data(), kept_dout.data(), kept_tokens.data(), (int)kept_tokens.size(), C);
  Dev<int32_t> t_d(tokens);
  Dev<float> dout_d(dout), first(std::vector<float>(dwte.size(), 0.0f)), second(first.host());
  cuda::embedding_backward(workspace(), first.ptr, dout_d.ptr, t_d.ptr, N, C);
  cuda::embedding_backward(workspace(), second.ptr, dout_d.ptr, t_d.ptr, N, C);
  CHECK(first.host() == second.host());
  // 6700 terms summed in another order: rounding grows ~sqrt(terms) x 2^-24.
  CHECK_CLOSE(first, dwte, 1e-4);
}

TEST_CASE("rmsnorm forward and backward match the CPU" * doctest::skip(!has_gpu())) {
  Rng rng{7, 400, 0};
  // C = 300: not a multiple of the block (256) or of a warp; N = 67 rows
  // leave the dg kernel's 16 row-strides unequal; N = 5000 splits dg's sum
  // into 10 row chunks, the last one short.
  struct Shape { int N, C; };
  for (Shape sh : {Shape{67, 300}, Shape{67, 4096}, Shape{5000, 300}}) {
    const int N = sh.N, C = sh.C;
    CAPTURE(N);
    CAPTURE(C);
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
    cuda::rmsnorm_backward(workspace(), dx_d.ptr, dg_d.ptr, dy_d.ptr, x_d.ptr, g_d.ptr,
                           rstd_d.ptr, N, C);
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

TEST_CASE("dropout forward and backward draw the CPU's mask" * doctest::skip(!has_gpu())) {
  Rng rng{15, 400, 0};
  const int64_t N = 10007;
  auto x = randn(N, rng), dout = randn(N, rng), dx = randn(N, rng);
  auto out = nans(N);
  Dev<float> x_d(x), do_d(dout), dx_d(dx), out_d(out);
  cpu::dropout_forward(out.data(), x.data(), N, 0.3f, 17, 4);
  cuda::dropout_forward(out_d.ptr, x_d.ptr, N, 0.3f, 17, 4);
  CHECK_CLOSE(out_d, out, 0.0);  // the same mask and one rounded product: exact
  cpu::dropout_backward(dx.data(), dout.data(), N, 0.3f, 17, 4);
  cuda::dropout_backward(dx_d.ptr, do_d.ptr, N, 0.3f, 17, 4);
  CHECK_CLOSE(dx_d, dx, 0.0);
}

TEST_CASE("residual forward (in place too) matches the CPU" * doctest::skip(!has_gpu())) {
  Rng rng{11, 400, 0};
  const int64_t N = 5003;
  auto a = randn(N, rng), b = randn(N, rng);
  auto out = nans(N);
  Dev<float> a_d(a), b_d(b), out_d(out);
  cpu::residual_forward(out.data(), a.data(), b.data(), N);
  cuda::residual_forward(out_d.ptr, a_d.ptr, b_d.ptr, N);
  CHECK_CLOSE(out_d, out, 0.0);  // one rounded add: exact
  cpu::residual_forward(a.data(), a.data(), b.data(), N);
  cuda::residual_forward(a_d.ptr, a_d.ptr, b_d.ptr, N);
  CHECK_CLOSE(a_d, a, 0.0);
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
    float mean_d = cuda::cross_entropy_forward(workspace(), losses_d.ptr, lse_d.ptr, lg_d.ptr,
                                               t_d.ptr, s.N, s.V);
    CHECK(std::fabs(mean_d - mean) <= kFp32 * std::fabs(mean));
    CHECK_CLOSE(losses_d, losses, kFp32);
    CHECK_CLOSE(lse_d, lse, kFp32);
    const float scale = 1.0f / s.N;
    cpu::cross_entropy_backward(dlogits.data(), logits.data(), lse.data(), targets.data(), scale, s.N, s.V);
    cuda::cross_entropy_backward(dl_d.ptr, lg_d.ptr, lse_d.ptr, t_d.ptr, scale, s.N, s.V);
    CHECK_CLOSE(dl_d, dlogits, kFp32);  // dlogits started random: overwritten, not accumulated
    // In place, as the model calls it: the gradient written over the logits.
    cuda::cross_entropy_backward(lg_d.ptr, lg_d.ptr, lse_d.ptr, t_d.ptr, scale, s.N, s.V);
    CHECK_CLOSE(lg_d, dlogits, kFp32);
  }
}

TEST_CASE("AdamW step matches the CPU: per-tensor, per-row and per-column counters, frozen vectors" *
          doctest::skip(!has_gpu())) {
  Rng rng{13, 400, 0};
  const AdamWConfig config{0.9f, 0.999f, 1e-8f, 0.1f};
  // A norm gain (per tensor), a LoRA A (per row), a LoRA B (per column).
  struct Tensor { size_t offset; int rows, cols; StepCounter counter; };
  const Tensor params[3] = {{0, 1, 70, StepCounter::kPerTensor},
                            {70, 4, 50, StepCounter::kPerRow},
                            {270, 60, 4, StepCounter::kPerColumn}};
  const size_t numel = 510;
  std::vector<uint8_t> frozen_A = {0, 1, 0, 0}, frozen_B = {0, 0, 1, 1};

  auto p = randn(numel, rng);
  std::vector<float> m(numel, 0.0f), v(numel, 0.0f);
  std::vector<std::vector<int64_t>> k = {std::vector<int64_t>(1, 0), std::vector<int64_t>(4, 0),
                                         std::vector<int64_t>(4, 0)};
  Dev<float> p_d(p), m_d(m), v_d(v);
  Dev<int64_t> k0(k[0]), k1(k[1]), k2(k[2]);
  Dev<uint8_t> fB(frozen_B);
  int64_t* counters_d[3] = {k0.ptr, k1.ptr, k2.ptr};
  for (int step = 0; step < 3; step++) {
    if (step == 2) frozen_A[1] = 0;  // thawed: row 1 takes its first step
    Dev<uint8_t> fA(frozen_A);
    const uint8_t* frozen[3] = {nullptr, frozen_A.data(), frozen_B.data()};
    const uint8_t* frozen_d[3] = {nullptr, fA.ptr, fB.ptr};
    auto g = randn(numel, rng);
    Dev<float> g_d(g);
    for (int i = 0; i < 3; i++) {
      const Tensor& t = params[i];
      const size_t o = t.offset;
      cpu::adamw_update(p.data() + o, m.data() + o, v.data() + o, g.data() + o, k[i].data(), frozen[i],
                        t.rows, t.cols, t.counter, 1e-2f, config.beta1, config.beta2, config.eps,
                        config.weight_decay);
      cuda::adamw_update(p_d.ptr + o, m_d.ptr + o, v_d.ptr + o, g_d.ptr + o, counters_d[i], frozen_d[i],
                         t.rows, t.cols, t.counter, 1e-2f, config.beta1, config.beta2, config.eps,
                         config.weight_decay);
    }
    CHECK_CLOSE(p_d, p, kFp32);
    CHECK_CLOSE(m_d, m, kFp32);
    CHECK_CLOSE(v_d, v, kFp32);
  }
  CHECK(k0.host() == k[0]);
  CHECK(k1.host() == k[1]);
  CHECK(k2.host() == k[2]);
}

TEST_CASE("sum_squares matches the CPU's double sum and is the same on every call" *
          doctest::skip(!has_gpu())) {
  Rng rng{15, 400, 0};
  // 0, fewer terms than one block, and sizes that leave the fixed grid
  // (1024 x 256 threads) partly idle, once and several times over.
  for (size_t n : {(size_t)0, (size_t)5, (size_t)1000, (size_t)262145, (size_t)1000003}) {
    CAPTURE(n);
    auto x = randn(n, rng, 3.0f);
    Dev<float> x_d(x);
    const double want = cpu::sum_squares(x.data(), n);
    const double got = cuda::sum_squares(workspace(), x_d.ptr, n);
    const double again = cuda::sum_squares(workspace(), x_d.ptr, n);
    if (n == 0) CHECK(got == 0.0);
    else CHECK(std::fabs(got - want) <= 1e-12 * want);
    CHECK(std::memcmp(&got, &again, sizeof got) == 0);  // deterministic, bit for bit
    CHECK(gpu().sum_squares(x_d.ptr, n) == got);
  }
}

TEST_CASE("scale multiplies every element, as the CPU does" * doctest::skip(!has_gpu())) {
  Rng rng{16, 400, 0};
  const size_t n = 100003;
  auto x = randn(n, rng);
  Dev<float> x_d(x);
  cpu::scale(x.data(), 0.37f, n);
  gpu().scale(x_d.ptr, 0.37f, n);
  CHECK_CLOSE(x_d, x, 0.0);  // one rounded multiply per element: exact
}

TEST_CASE("CudaBackend names its device and allocates zeroed memory" *
          doctest::skip(!has_gpu())) {
  CHECK(gpu().device() == Device::kCuda);
  CHECK(gpu().name().rfind("cuda:", 0) == 0);
  MESSAGE("backend: " << gpu().name());
  // Fill, free and allocate again: the allocator hands the same memory back,
  // so zeros now come from alloc's own fill, not from a fresh page.
  const size_t n = 4099;
  for (int round = 0; round < 2; round++) {
    Buffer<float> b(gpu(), n);
    CHECK(b.to_host() == std::vector<float>(n, 0.0f));
    b.from_host(nans(n));
  }
  void* h = gpu().alloc_host(n * sizeof(float));
  std::vector<float> host(n);
  std::memcpy(host.data(), h, n * sizeof(float));
  CHECK(host == std::vector<float>(n, 0.0f));
  gpu().release_host(h);
  gpu().release(nullptr);
  gpu().release_host(nullptr);
}

TEST_CASE("CudaBackend copy moves bytes host -> device -> device -> host, pinned or not" *
          doctest::skip(!has_gpu())) {
  Rng rng{17, 400, 0};
  const size_t n = 10007;
  auto x = randn(n, rng);
  Backend& be = gpu();
  Buffer<float> a(be, n), b(be, n), pinned(be, n, Buffer<float>::kHost);
  be.copy(a.data(), x.data(), n * sizeof(float));
  be.copy(b.data(), a.data(), n * sizeof(float));
  std::vector<float> back = nans(n);
  be.copy(back.data(), b.data(), n * sizeof(float));
  be.copy(pinned.data(), b.data(), n * sizeof(float));
  be.synchronize();
  CHECK(std::memcmp(back.data(), x.data(), n * sizeof(float)) == 0);
  CHECK(std::memcmp(pinned.data(), x.data(), n * sizeof(float)) == 0);
  // zero(): a middle range only.
  be.zero(a.data() + 100, 50 * sizeof(float));
  for (size_t i = 100; i < 150; i++) x[i] = 0.0f;
  CHECK(a.to_host() == x);
}

TEST_CASE("CudaBackend copy_2d moves one column of a row-major matrix both ways; zero_2d zeroes one" *
          doctest::skip(!has_gpu())) {
  Rng rng{18, 400, 0};
  const int rows = 37, cols = 13, j = 5;
  const size_t pitch = cols * sizeof(float);
  Backend& be = gpu();
  for (bool pinned : {false, true}) {
    CAPTURE(pinned);
    auto M = randn((size_t)rows * cols, rng);
    Dev<float> M_d(M);
    // Device column -> host vector (host pitch: one float).
    Buffer<float> col(be, rows, Buffer<float>::kHost);
    std::vector<float> pageable = nans(rows);
    float* dst = pinned ? col.data() : pageable.data();
    be.copy_2d(dst, sizeof(float), M_d.ptr + j, pitch, sizeof(float), rows);
    be.synchronize();
    for (int i = 0; i < rows; i++) CHECK(dst[i] == M[(size_t)i * cols + j]);
    // Host vector -> device column j + 1; every other element unchanged.
    auto c = randn(rows, rng);
    std::copy(c.begin(), c.end(), dst);
    be.copy_2d(M_d.ptr + j + 1, pitch, dst, sizeof(float), sizeof(float), rows);
    be.synchronize();
    for (int i = 0; i < rows; i++) M[(size_t)i * cols + j + 1] = c[i];
    CHECK(M_d.host() == M);
    // zero_2d: column j alone becomes zero.
    be.zero_2d(M_d.ptr + j, pitch, sizeof(float), rows);
    for (int i = 0; i < rows; i++) M[(size_t)i * cols + j] = 0.0f;
    CHECK(M_d.host() == M);
  }
}

#else

TEST_CASE("CUDA ops: this build has no CUDA backend" * doctest::skip()) {}

#endif
