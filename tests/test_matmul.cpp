// matmul, matmul_backward and the linear layer against naive double loops and
// central finite differences (see tests/gradcheck.h for the recipe).
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "engine/ops.h"
#include "tests/gradcheck.h"

using namespace switchlora;
using namespace switchlora::test;

// Element (m, k) of op(A) and (k, n) of op(B), with the stored layouts of ops.h.
template <class T>
static T at_a(const std::vector<T>& A, int m, int k, int M, int K, bool tA) {
  return tA ? A[(size_t)k * M + m] : A[(size_t)m * K + k];
}
template <class T>
static T at_b(const std::vector<T>& B, int k, int n, int K, int N, bool tB) {
  return tB ? B[(size_t)n * K + k] : B[(size_t)k * N + n];
}

// op(A) @ op(B) by the textbook triple loop, in double.
template <class T>
static std::vector<double> naive_matmul(const std::vector<T>& A, const std::vector<T>& B, int M,
                                        int N, int K, bool tA, bool tB) {
  std::vector<double> C((size_t)M * N, 0.0);
  for (int m = 0; m < M; m++)
    for (int n = 0; n < N; n++)
      for (int k = 0; k < K; k++)
        C[(size_t)m * N + n] += (double)at_a(A, m, k, M, K, tA) * at_b(B, k, n, K, N, tB);
  return C;
}

// Every element of a float GEMM result is a K-term dot product of order-1
// numbers. Float rounding (unit 6e-8) over K <= 600 terms, blocked and fused
// by the GEMM library, stays below K * 6e-8 * max|a b| ~ 4e-5 of a term, and the scale
// (max |C|, ~3 sqrt(K)) is 50-70 terms: 1e-5 of the scale covers the worst case
// with margin, while any indexing or transpose mistake is an O(1) error.
constexpr double kTol = 1e-5;

// Sizes chosen to cross Eigen's register blocking (non-multiples of 8) and,
// with K = 300, its cache blocking along K.
constexpr int kM = 37, kN = 29, kK = 300;

using MatmulFn = void (*)(float*, const float*, const float*, int, int, int, bool, bool, float, float);
// matmul_in_thread on packed arrays (row strides = row lengths).
static void matmul_in_thread_packed(float* C, const float* A, const float* B, int M, int N, int K, bool tA,
                                    bool tB, float alpha, float beta) {
  cpu::matmul_in_thread(C, A, B, M, N, K, tA, tB, alpha, beta, tA ? M : K, tB ? K : N, N);
}
// matmul on the build's library, and matmul_in_thread (the caller's thread:
// attention's per-head products) to the same contract.
static const std::pair<const char*, MatmulFn> kMatmuls[] = {{"matmul", cpu::matmul},
                                                            {"matmul_in_thread", matmul_in_thread_packed}};

TEST_CASE("matmul and matmul_in_thread match a naive triple loop in all four transpose combinations") {
  Rng rng{1234, 0, 0};
  for (auto [name, mm] : kMatmuls)
    for (int tA = 0; tA < 2; tA++)
      for (int tB = 0; tB < 2; tB++) {
        CAPTURE(name);
        CAPTURE(tA);
        CAPTURE(tB);
        auto A = randn((size_t)kM * kK, rng), B = randn((size_t)kK * kN, rng);
        auto want = naive_matmul(A, B, kM, kN, kK, tA, tB);
        // beta = 0 must overwrite C even when it holds NaN.
        std::vector<float> C((size_t)kM * kN, std::numeric_limits<float>::quiet_NaN());
        mm(C.data(), A.data(), B.data(), kM, kN, kK, tA, tB, 1.0f, 0.0f);
        check_close("C = op(A) op(B)", C, want, kTol);
        // alpha and beta: C = 1.5 op(A) op(B) - 0.5 C0
        auto C0 = randn(C.size(), rng);
        C = C0;
        mm(C.data(), A.data(), B.data(), kM, kN, kK, tA, tB, 1.5f, -0.5f);
        for (size_t i = 0; i < want.size(); i++) want[i] = 1.5 * want[i] - 0.5 * C0[i];
        check_close("C = 1.5 op(A) op(B) - 0.5 C", C, want, kTol);
      }
}

TEST_CASE("matmul_backward matches naive dA = dC op(B)^T and dB = op(A)^T dC in all four combinations") {
  Rng rng{99, 0, 0};
  for (int tA = 0; tA < 2; tA++)
    for (int tB = 0; tB < 2; tB++) {
      CAPTURE(tA);
      CAPTURE(tB);
      auto A = randn((size_t)kM * kK, rng), B = randn((size_t)kK * kN, rng);
      auto dC = randn((size_t)kM * kN, rng);
      std::vector<float> dA(A.size(), 0.0f), dB(B.size(), 0.0f);
      cpu::matmul_backward(dA.data(), dB.data(), dC.data(), A.data(), B.data(), kM, kN, kK, tA, tB);
      // d op(A) (M, K) and d op(B) (K, N), then laid out as A and B are stored.
      std::vector<double> wantA(A.size(), 0.0), wantB(B.size(), 0.0);
      for (int m = 0; m < kM; m++)
        for (int k = 0; k < kK; k++) {
          double s = 0.0;
          for (int n = 0; n < kN; n++) s += (double)dC[(size_t)m * kN + n] * at_b(B, k, n, kK, kN, tB);
          wantA[tA ? (size_t)k * kM + m : (size_t)m * kK + k] = s;
        }
      for (int k = 0; k < kK; k++)
        for (int n = 0; n < kN; n++) {
          double s = 0.0;
          for (int m = 0; m < kM; m++) s += (double)at_a(A, m, k, kM, kK, tA) * dC[(size_t)m * kN + n];
          wantB[tB ? (size_t)n * kK + k : (size_t)k * kN + n] = s;
        }
      check_close("dA", dA, wantA, kTol);
      check_close("dB", dB, wantB, kTol);
    }
}

TEST_CASE("matmul_backward grads match finite differences in all four transpose combinations") {
  const int M = 5, N = 7, K = 6;
  Rng rng{7, 0, 0};
  for (int tA = 0; tA < 2; tA++)
    for (int tB = 0; tB < 2; tB++) {
      CAPTURE(tA);
      CAPTURE(tB);
      auto A = randn((size_t)M * K, rng), B = randn((size_t)K * N, rng);
      auto R = randn((size_t)M * N, rng);
      std::vector<float> dA(A.size(), 0.0f), dB(B.size(), 0.0f);
      cpu::matmul_backward(dA.data(), dB.data(), R.data(), A.data(), B.data(), M, N, K, tA, tB);
      auto Ad = to_double(A), Bd = to_double(B);
      auto gA = numeric_grad(
          [&](const std::vector<double>& a) { return probe_loss(naive_matmul(a, Bd, M, N, K, tA, tB), R); },
          Ad);
      auto gB = numeric_grad(
          [&](const std::vector<double>& b) { return probe_loss(naive_matmul(Ad, b, M, N, K, tA, tB), R); },
          Bd);
      check_close("dA vs finite differences", dA, gA, kTol);
      check_close("dB vs finite differences", dB, gB, kTol);
    }
}

TEST_CASE("matmul_backward accumulates grads: two calls give twice one call") {
  Rng rng{5, 0, 0};
  for (int tA = 0; tA < 2; tA++)
    for (int tB = 0; tB < 2; tB++) {
      CAPTURE(tA);
      CAPTURE(tB);
      auto A = randn((size_t)kM * kK, rng), B = randn((size_t)kK * kN, rng);
      auto dC = randn((size_t)kM * kN, rng);
      std::vector<float> dA1(A.size(), 0.0f), dB1(B.size(), 0.0f), dA2 = dA1, dB2 = dB1;
      cpu::matmul_backward(dA1.data(), dB1.data(), dC.data(), A.data(), B.data(), kM, kN, kK, tA, tB);
      for (int rep = 0; rep < 2; rep++)
        cpu::matmul_backward(dA2.data(), dB2.data(), dC.data(), A.data(), B.data(), kM, kN, kK, tA, tB);
      // Not bit-exact: Eigen adds its blocked partial sums into the existing
      // gradient one block at a time, so only rounding may differ (kTol).
      std::vector<double> twiceA(dA1.begin(), dA1.end()), twiceB(dB1.begin(), dB1.end());
      for (double& v : twiceA) v *= 2.0;
      for (double& v : twiceB) v *= 2.0;
      check_close("dA after two calls", dA2, twiceA, kTol);
      check_close("dB after two calls", dB2, twiceB, kTol);
    }
}

TEST_CASE("matmul_backward with a null grad pointer skips it and still fills the other") {
  const int M = 6, N = 5, K = 4;
  Rng rng{11, 0, 0};
  auto A = randn((size_t)M * K, rng), B = randn((size_t)K * N, rng), dC = randn((size_t)M * N, rng);
  std::vector<float> dA(A.size(), 0.0f), dB(B.size(), 0.0f);
  cpu::matmul_backward(dA.data(), dB.data(), dC.data(), A.data(), B.data(), M, N, K, false, true);
  std::vector<float> onlyA(A.size(), 0.0f), onlyB(B.size(), 0.0f);
  cpu::matmul_backward(onlyA.data(), nullptr, dC.data(), A.data(), B.data(), M, N, K, false, true);
  cpu::matmul_backward(nullptr, onlyB.data(), dC.data(), A.data(), B.data(), M, N, K, false, true);
  CHECK(onlyA == dA);  // the same computation either way: bit-exact
  CHECK(onlyB == dB);
}

// y = x W^T with W (out, in), in double.
static std::vector<double> naive_linear(const std::vector<double>& x, const std::vector<double>& W,
                                        int N, int in, int out) {
  std::vector<double> y((size_t)N * out, 0.0);
  for (int n = 0; n < N; n++)
    for (int o = 0; o < out; o++)
      for (int i = 0; i < in; i++) y[(size_t)n * out + o] += x[(size_t)n * in + i] * W[(size_t)o * in + i];
  return y;
}

TEST_CASE("linear forward matches x W^T and its grads match finite differences") {
  const int N = 6, in = 9, out = 4;
  Rng rng{21, 0, 0};
  auto x = randn((size_t)N * in, rng), W = randn((size_t)out * in, rng), R = randn((size_t)N * out, rng);
  auto xd = to_double(x), Wd = to_double(W);
  std::vector<float> y((size_t)N * out);
  cpu::linear_forward(y.data(), x.data(), W.data(), N, in, out);
  check_close("y = x W^T", y, naive_linear(xd, Wd, N, in, out), kTol);

  std::vector<float> dx(x.size(), 0.0f), dW(W.size(), 0.0f);
  cpu::linear_backward(dx.data(), dW.data(), R.data(), x.data(), W.data(), N, in, out);
  auto gx = numeric_grad([&](const std::vector<double>& v) { return probe_loss(naive_linear(v, Wd, N, in, out), R); }, xd);
  auto gW = numeric_grad([&](const std::vector<double>& v) { return probe_loss(naive_linear(xd, v, N, in, out), R); }, Wd);
  check_close("dx", dx, gx, kTol);
  check_close("dW", dW, gW, kTol);

  // Accumulation and null pointers: a second call with dx = null adds to dW only.
  std::vector<float> dx1 = dx, dW1 = dW;
  cpu::linear_backward(nullptr, dW.data(), R.data(), x.data(), W.data(), N, in, out);
  CHECK(dx == dx1);
  for (double& v : gW) v *= 2.0;
  check_close("dW after two calls", dW, gW, kTol);
}

// The edges a BLAS would reject: K = 0 is C = beta C (beta = 0 overwriting
// even NaN), and M = 0 or N = 0 touches nothing.
TEST_CASE("matmul and matmul_in_thread with K = 0 scale C by beta, and with M or N = 0 do nothing") {
  for (auto [name, mm] : kMatmuls) {
    CAPTURE(name);
    std::vector<float> C(6, std::numeric_limits<float>::quiet_NaN());
    const float one = 1.0f;
    mm(C.data(), &one, &one, 2, 3, 0, false, false, 1.0f, 0.0f);
    CHECK(C == std::vector<float>(6, 0.0f));
    C.assign(6, 2.0f);
    mm(C.data(), &one, &one, 2, 3, 0, true, true, 1.0f, 0.5f);
    CHECK(C == std::vector<float>(6, 1.0f));
    mm(C.data(), &one, &one, 0, 3, 4, false, false, 1.0f, 0.0f);
    mm(C.data(), &one, &one, 2, 0, 4, false, false, 1.0f, 0.0f);
    CHECK(C == std::vector<float>(6, 1.0f));
  }
}

// Attention's products: blocks of larger arrays (a head's K^T[:, 0 : ns] is
// (HS, ns) inside (HS, T)), one product per thread of an OpenMP loop. Every
// array is embedded with a row stride longer than its rows, the padding NaN:
// a stride mistake reads NaN or writes over the padding.
TEST_CASE("matmul_in_thread honours row strides, inside an OpenMP region") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const int M = 64, N = 96, K = 70, pad = 5;
  Rng rng{4321, 0, 0};
  for (int tA = 0; tA < 2; tA++)
    for (int tB = 0; tB < 2; tB++) {
      CAPTURE(tA);
      CAPTURE(tB);
      const int ra = tA ? K : M, ca = tA ? M : K, rb = tB ? N : K, cb = tB ? K : N;
      auto A = randn((size_t)ra * ca, rng), B = randn((size_t)rb * cb, rng);
      const int lda = ca + pad, ldb = cb + pad, ldc = N + pad;
      std::vector<float> As((size_t)ra * lda, nan), Bs((size_t)rb * ldb, nan);
      for (int i = 0; i < ra; i++)
        for (int j = 0; j < ca; j++) As[(size_t)i * lda + j] = A[(size_t)i * ca + j];
      for (int i = 0; i < rb; i++)
        for (int j = 0; j < cb; j++) Bs[(size_t)i * ldb + j] = B[(size_t)i * cb + j];
      const std::vector<double> want = naive_matmul(A, B, M, N, K, tA, tB);
      const int kThreads = 4;
      std::vector<std::vector<float>> Cs(kThreads, std::vector<float>((size_t)M * ldc, nan));
#pragma omp parallel for num_threads(kThreads)
      for (int t = 0; t < kThreads; t++) {
        float* C = Cs[t].data();
        for (int i = 0; i < M; i++)  // beta = 1 accumulates onto 0.5
          for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = 0.5f;
        cpu::matmul_in_thread(C, As.data(), Bs.data(), M, N, K, tA, tB, 2.0f, 1.0f, lda, ldb, ldc);
      }
      for (const std::vector<float>& C : Cs) {
        std::vector<float> got((size_t)M * N);
        for (int i = 0; i < M; i++)
          for (int j = 0; j < N; j++) got[(size_t)i * N + j] = C[(size_t)i * ldc + j];
        std::vector<double> w = want;
        for (double& v : w) v = 2.0 * v + 0.5;
        check_close("C = 2 op(A) op(B) + C", got, w, kTol);
        for (int i = 0; i < M; i++)
          for (int j = N; j < ldc; j++) CHECK(std::isnan(C[(size_t)i * ldc + j]));  // padding untouched
      }
    }
}

// The model's sizes take the library's threaded, cache-blocked paths (the
// small cases above may not). Called from inside an OpenMP region, matmul
// runs on its caller's thread: right there too, and the
// same bits on every thread (OpenBLAS's single-threaded bits differ from its
// threaded ones, so a run's bits depend on OMP_NUM_THREADS; a repeated call
// with the same threads gives the same bits, which resuming relies on).
// A default build splits them between two libraries (cpu::gemm_library() and
// cpu::weight_gradient_gemm_library(): tA with no side <= 64 is OpenBLAS's,
// the rest, the skinny shapes of LoRA's x A^T, xa B^T and dA among them,
// BLIS's): every case here is held to the same.
TEST_CASE("matmul at model sizes matches the naive loop, repeats its bits, and is right inside an OpenMP region") {
  const int shapes[][3] = {{300, 260, 290}, {600, 16, 290}, {600, 290, 16}, {16, 290, 600}, {64, 65, 300}};
  Rng rng{77, 0, 0};
  for (auto [M, N, K] : shapes)
    for (int tA = 0; tA < 2; tA++)
      for (int tB = 0; tB < 2; tB++) {
        CAPTURE(M);
        CAPTURE(N);
        CAPTURE(K);
        CAPTURE(tA);
        CAPTURE(tB);
        auto A = randn((size_t)M * K, rng), B = randn((size_t)K * N, rng);
        std::vector<float> C((size_t)M * N, std::numeric_limits<float>::quiet_NaN());
        cpu::matmul(C.data(), A.data(), B.data(), M, N, K, tA, tB);
        const std::vector<double> want = naive_matmul(A, B, M, N, K, tA, tB);
        check_close("C = op(A) op(B)", C, want, kTol);
        std::vector<float> again(C.size());
        cpu::matmul(again.data(), A.data(), B.data(), M, N, K, tA, tB);
        CHECK(again == C);
        // beta = 1 accumulates, as every backward product does: C + op(A) op(B)
        cpu::matmul(again.data(), A.data(), B.data(), M, N, K, tA, tB, 1.0f, 1.0f);
        std::vector<double> twice(want.size());
        for (size_t i = 0; i < want.size(); i++) twice[i] = 2 * want[i];
        check_close("C += op(A) op(B)", again, twice, kTol);
        std::vector<std::vector<float>> per_thread(4, std::vector<float>(C.size()));
#pragma omp parallel for
        for (int i = 0; i < 4; i++) cpu::matmul(per_thread[i].data(), A.data(), B.data(), M, N, K, tA, tB);
        check_close("C inside an OpenMP region", per_thread[0], want, kTol);
        for (const auto& c : per_thread) CHECK(c == per_thread[0]);
      }
}
