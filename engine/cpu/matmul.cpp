// Matrix multiply and the bias-free linear layer: the only BLAS call site.
// (matmul_in_thread, for the small products attention runs on each thread of
// its own OpenMP loop, is BLIS's where this build has it, else Eigen's: see ops.h.)
// The library is chosen when the engine is built (CMake's SWITCHLORA_BLAS,
// DESIGN §9): OpenBLAS or BLIS through their CBLAS interface (Debian's OpenMP
// builds, so their threads are the engine's OpenMP threads), or Eigen, which
// maps the row-major float arrays in place and needs nothing installed; the
// default build splits the products between OpenBLAS and BLIS (below). A
// stored transpose is a transpose flag to every library: nothing is copied.
#if defined(SWITCHLORA_CBLAS)
#include <cblas.h>
#endif
#include <Eigen/Core>
#include <algorithm>
#include <cstring>

#include "engine/cpu/matmul_blis.h"
#include "engine/error.h"
#include "engine/ops.h"

namespace switchlora::cpu {

const char* weight_gradient_gemm_library() {
#if defined(SWITCHLORA_CBLAS)
  return SWITCHLORA_CBLAS;  // "openblas" or "blis", from CMake
#else
  return "eigen";
#endif
}

const char* gemm_library() {
#if defined(SWITCHLORA_SPLIT_GEMM)
  return "blis";
#else
  return weight_gradient_gemm_library();  // one library for every product
#endif
}

// C (M, N) = alpha * op(A) @ op(B) + beta * C through Eigen, mapping the
// row-major arrays in place with their row strides lda, ldb, ldc (called
// with M, N, K > 0). Unused in a build that splits its products between
// OpenBLAS and BLIS.
[[maybe_unused]] static void eigen_matmul(float* C, const float* A, const float* B, int M, int N, int K,
                                          bool transA, bool transB, float alpha, float beta, int lda, int ldb,
                                          int ldc) {
  using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Stride = Eigen::OuterStride<>;
  using ConstMap = Eigen::Map<const RowMat, 0, Stride>;
  Eigen::Map<RowMat, 0, Stride> c(C, M, N, Stride(ldc));
  if (beta == 0.0f) c.setZero();
  else if (beta != 1.0f) c *= beta;
  ConstMap a(A, transA ? K : M, transA ? M : K, Stride(lda));
  ConstMap b(B, transB ? N : K, transB ? K : N, Stride(ldb));
  if (!transA && !transB) c.noalias() += alpha * (a * b);
  else if (!transA && transB) c.noalias() += alpha * (a * b.transpose());
  else if (transA && !transB) c.noalias() += alpha * (a.transpose() * b);
  else c.noalias() += alpha * (a.transpose() * b.transpose());
}

// Sizes checked, the empty cases done: true when a product remains.
static bool matmul_needs_product(float* C, int M, int N, int K, float beta, int ldc) {
  SL_CHECK(M >= 0 && N >= 0 && K >= 0, "matmul: negative size M=" + std::to_string(M) +
                                           " N=" + std::to_string(N) + " K=" + std::to_string(K));
  if (M == 0 || N == 0) return false;
  if (K == 0) {  // no product: C = beta C (a BLAS would reject the leading dimension 0)
    for (int i = 0; i < M; i++) {
      float* row = C + (int64_t)i * ldc;
      if (beta == 0.0f) std::memset(row, 0, sizeof(float) * N);  // C may hold garbage (even NaN)
      else for (int j = 0; j < N; j++) row[j] *= beta;
    }
    return false;
  }
  return true;
}

#if defined(SWITCHLORA_CBLAS)
void cblas_matmul(float* C, const float* A, const float* B, int M, int N, int K, bool transA, bool transB,
                  float alpha, float beta) {
  // beta = 0 overwrites C in both libraries: garbage and NaN in C are never read.
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N,
              K, alpha, A, transA ? M : K, B, transB ? K : N, beta, C, N);
}
#endif

// C (M, N) = alpha * op(A) @ op(B) + beta * C
void matmul(float* C, const float* A, const float* B, int M, int N, int K,
            bool transA, bool transB, float alpha, float beta) {
  if (!matmul_needs_product(C, M, N, K, beta, N)) return;
  // A stored (M, K), or (K, M) when transA; likewise B stored (K, N) or (N, K).
  const int lda = transA ? M : K, ldb = transB ? K : N;
#if defined(SWITCHLORA_SPLIT_GEMM)
  // On our machines BLIS multiplies LoRA's skinny products (a side of r) up
  // to 5x faster than OpenBLAS, and the products whose rows are the tokens
  // (forward x W^T, dx = dy W) 5-30% faster at the 20m shapes; OpenBLAS wins
  // the weight gradients dy^T x, a sum over the tokens (docs/PERFORMANCE.md,
  // `bench --gemm_shapes`). A rule on the shape, fixed at build time, so a
  // run's bits never depend on a noisy measurement.
  const bool weight_gradient = transA && std::min({M, N, K}) > kSkinnyMax;
  if (!weight_gradient) return blis_matmul(C, A, B, M, N, K, transA, transB, alpha, beta, lda, ldb, N);
#endif
#if defined(SWITCHLORA_CBLAS)
  cblas_matmul(C, A, B, M, N, K, transA, transB, alpha, beta);
#else
  eigen_matmul(C, A, B, M, N, K, transA, transB, alpha, beta, lda, ldb, N);
#endif
}

void matmul_in_thread(float* C, const float* A, const float* B, int M, int N, int K, bool transA,
                      bool transB, float alpha, float beta, int lda, int ldb, int ldc) {
  if (!matmul_needs_product(C, M, N, K, beta, ldc)) return;
#if defined(SWITCHLORA_SPLIT_GEMM)
  // One thread inside a parallel region (matmul_blis.cpp).
  blis_matmul(C, A, B, M, N, K, transA, transB, alpha, beta, lda, ldb, ldc);
#else
  eigen_matmul(C, A, B, M, N, K, transA, transB, alpha, beta, lda, ldb, ldc);
#endif
}

// With C = op(A) @ op(B):  d op(A) = dC @ op(B)^T  (M, K),  d op(B) = op(A)^T @ dC  (K, N).
// When A is stored transposed its gradient is the transpose of d op(A), which
// is again a product, so every case is one matmul accumulated with beta = 1.
void matmul_backward(float* dA, float* dB, const float* dC, const float* A,
                     const float* B, int M, int N, int K, bool transA, bool transB) {
  if (dA) {
    if (!transA) matmul(dA, dC, B, M, K, N, false, !transB, 1.0f, 1.0f);  // dC @ op(B)^T
    else matmul(dA, B, dC, K, M, N, transB, true, 1.0f, 1.0f);            // op(B) @ dC^T
  }
  if (dB) {
    if (!transB) matmul(dB, A, dC, K, N, M, !transA, false, 1.0f, 1.0f);  // op(A)^T @ dC
    else matmul(dB, dC, A, N, K, M, true, transA, 1.0f, 1.0f);            // dC^T @ op(A)
  }
}

// y (N, out) = x (N, in) @ W^T
void linear_forward(float* y, const float* x, const float* W, int N, int in, int out) {
  matmul(y, x, W, N, out, in, false, true);
}

// dx (N, in) += dy (N, out) @ W (out, in);   dW (out, in) += dy^T @ x
void linear_backward(float* dx, float* dW, const float* dy, const float* x,
                     const float* W, int N, int in, int out) {
  if (dx) matmul(dx, dy, W, N, in, out, false, false, 1.0f, 1.0f);
  if (dW) matmul(dW, dy, x, out, in, N, true, false, 1.0f, 1.0f);
}

}  // namespace switchlora::cpu
