// Matrix multiply through cuBLAS: the only BLAS call site of the CUDA
// backend, the twin of engine/cpu/matmul.cpp.
//
// cuBLAS is column-major. A row-major (M, N) matrix is the column-major
// (N, M) matrix of its transpose, so row-major C = op(A) op(B) is computed
// as column-major C^T = op(B)^T op(A)^T: swap the operands, keep the flags.
//
// Every product goes through cublasGemmEx with fp32 A, B and C; only the
// compute type changes with the precision. With the FAST
// compute types cuBLAS rounds the fp32 inputs to TF32 or bf16 itself, inside
// the kernel, so no bf16 copies of weights or activations are ever stored.
#include <string>

#include "engine/cuda/common.cuh"
#include "engine/cuda/ops.h"

namespace switchlora::cuda {

// The compute type of a GEMM at precision p: CUBLAS_COMPUTE_32F is IEEE fp32
// (cuBLAS does not use tensor cores for it under the default math mode).
static cublasComputeType_t compute_type(Precision p) {
  if (p == Precision::kTf32) return CUBLAS_COMPUTE_32F_FAST_TF32;
  if (p == Precision::kBf16) return CUBLAS_COMPUTE_32F_FAST_16BF;
  return CUBLAS_COMPUTE_32F;
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

// C (M, N) = alpha * op(A) @ op(B) + beta * C at precision p, on the
// workspace's cuBLAS handle
void matmul(Workspace& ws, float* C, const float* A, const float* B, int M, int N, int K,
            bool transA, bool transB, float alpha, float beta, Precision p) {
  check_sizes(M, N, K, "matmul");
  if (M == 0 || N == 0) return;
  CUBLAS_CHECK(cublasGemmEx(ws.blas, transB ? CUBLAS_OP_T : CUBLAS_OP_N,
                            transA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha,
                            B, CUDA_R_32F, ld(transB ? K : N), A, CUDA_R_32F,
                            ld(transA ? M : K), &beta, C, CUDA_R_32F, ld(N), compute_type(p),
                            CUBLAS_GEMM_DEFAULT));
}

}  // namespace switchlora::cuda
