// Matrix multiply and the bias-free linear layer: the only BLAS call site.
// Eigen maps the row-major float arrays in place (no copies); a stored
// transpose is just a transposed view, and Eigen's GEMM picks the right
// kernel and parallelises over OpenMP threads by itself.
#include <Eigen/Core>

#include "engine/error.h"
#include "engine/ops.h"

namespace switchlora::cpu {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const RowMat>;

// C (M, N) = alpha * op(A) @ op(B) + beta * C
void matmul(float* C, const float* A, const float* B, int M, int N, int K,
            bool transA, bool transB, float alpha, float beta) {
  SL_CHECK(M >= 0 && N >= 0 && K >= 0, "matmul: negative size M=" + std::to_string(M) +
                                           " N=" + std::to_string(N) + " K=" + std::to_string(K));
  Eigen::Map<RowMat> c(C, M, N);
  if (beta == 0.0f) c.setZero();  // C may hold garbage (even NaN) when beta = 0
  else if (beta != 1.0f) c *= beta;
  if (K == 0) return;
  // A stored (M, K), or (K, M) when transA; likewise B stored (K, N) or (N, K).
  ConstMap a(A, transA ? K : M, transA ? M : K);
  ConstMap b(B, transB ? N : K, transB ? K : N);
  if (!transA && !transB) c.noalias() += alpha * (a * b);
  else if (!transA && transB) c.noalias() += alpha * (a * b.transpose());
  else if (transA && !transB) c.noalias() += alpha * (a.transpose() * b);
  else c.noalias() += alpha * (a.transpose() * b.transpose());
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
