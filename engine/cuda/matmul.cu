// Matrix multiply and the bias-free linear layer through cuBLAS: the only
// BLAS call site of the CUDA backend, the twin of engine/cpu/matmul.cpp.
//
// cuBLAS is column-major. A row-major (M, N) matrix is the column-major
// (N, M) matrix of its transpose, so row-major C = op(A) op(B) is computed
// as column-major C^T = op(B)^T op(A)^T: swap the operands, keep the flags.
#include "engine/cuda/common.cuh"
#include "engine/cuda/ops.h"

namespace switchlora::cuda {

// One handle for the process, made on first use (on the current device).
static cublasHandle_t handle() {
  static cublasHandle_t h = [] {
    cublasHandle_t created;
    CUBLAS_CHECK(cublasCreate(&created));
    return created;
  }();
  return h;
}

void set_tf32(bool enabled) {
  CUBLAS_CHECK(cublasSetMathMode(handle(), enabled ? CUBLAS_TF32_TENSOR_OP_MATH
                                                   : CUBLAS_DEFAULT_MATH));
}

static void check_sizes(int M, int N, int K, const char* op) {
  SL_CHECK(M >= 0 && N >= 0 && K >= 0, std::string(op) + ": negative size M=" +
                                           std::to_string(M) + " N=" + std::to_string(N) +
                                           " K=" + std::to_string(K));
}

// Leading dimensions of the row-major operands: A stored (M, K) or (K, M),
// B stored (K, N) or (N, K); max(1, .) because cuBLAS rejects 0 even for
// empty matrices.
static int ld(int cols) { return cols > 1 ? cols : 1; }

// C (M, N) = alpha * op(A) @ op(B) + beta * C
void matmul(float* C, const float* A, const float* B, int M, int N, int K,
            bool transA, bool transB, float alpha, float beta) {
  check_sizes(M, N, K, "matmul");
  if (M == 0 || N == 0) return;
  CUBLAS_CHECK(cublasSgemm(handle(), transB ? CUBLAS_OP_T : CUBLAS_OP_N,
                           transA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha,
                           B, ld(transB ? K : N), A, ld(transA ? M : K), &beta, C, ld(N)));
}

void matmul_bf16(float* C, const __nv_bfloat16* A, const __nv_bfloat16* B, int M, int N,
                 int K, bool transA, bool transB, float alpha, float beta) {
  check_sizes(M, N, K, "matmul_bf16");
  if (M == 0 || N == 0) return;
  CUBLAS_CHECK(cublasGemmEx(handle(), transB ? CUBLAS_OP_T : CUBLAS_OP_N,
                            transA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha,
                            B, CUDA_R_16BF, ld(transB ? K : N), A, CUDA_R_16BF,
                            ld(transA ? M : K), &beta, C, CUDA_R_32F, ld(N),
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// With C = op(A) @ op(B):  d op(A) = dC @ op(B)^T  (M, K),  d op(B) = op(A)^T @ dC  (K, N);
// a gradient of a transposed operand is again one product, accumulated with beta = 1.
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

}  // namespace switchlora::cuda
