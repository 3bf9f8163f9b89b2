// Every product but the model's weight gradients through BLIS, in an
// OpenBLAS build (matmul.cpp says which and why): OpenBLAS multiplies
// LoRA's skinny products at 15-33 GFLOP/s on this kind of machine, BLIS at
// 22-146, and BLIS leads on the forward and dx products too
// (docs/PERFORMANCE.md, `bench --gemm_shapes`). BLIS's own typed API
// (bli_sgemm_ex), not its CBLAS layer: every BLAS name (cblas_sgemm, sgemm_)
// in this process is OpenBLAS's, linked first, and the typed API never goes
// through them. Compiled only where CMake found both.
#if defined(SWITCHLORA_SPLIT_GEMM)
#include <blis.h>
#include <omp.h>

#include "engine/cpu/matmul_blis.h"

namespace switchlora::cpu {

void blis_matmul(float* C, const float* A, const float* B, int M, int N, int K, bool transA,
                 bool transB, float alpha, float beta, int lda, int ldb, int ldc) {
  // Row-major storage: a stored matrix has row stride ld and column stride
  // 1; a stored transpose is BLIS's transpose flag.
  rntm_t rntm = BLIS_RNTM_INITIALIZER;  // this call's threads: the engine's OpenMP threads
  bli_rntm_set_num_threads(omp_in_parallel() ? 1 : omp_get_max_threads(), &rntm);
  bli_sgemm_ex(transA ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, transB ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, M, N,
               K, &alpha, const_cast<float*>(A), lda, 1, const_cast<float*>(B), ldb, 1, &beta, C, ldc, 1,
               nullptr, &rntm);
}

}  // namespace switchlora::cpu
#endif
