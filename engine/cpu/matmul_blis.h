// BLIS for the skinny products of an OpenBLAS build: engine/cpu/matmul_blis.cpp.
#pragma once

namespace switchlora::cpu {

// A product whose smallest dimension is at most this goes to BLIS: LoRA's
// ranks (8-64 in the paper's table) and none of the model's other GEMMs.
constexpr int kSkinnyMax = 64;
// C (M, N) = alpha op(A) op(B) + beta C, row-major with row strides lda,
// ldb, ldc; M, N, K > 0. On one thread inside an OpenMP region, else on the
// engine's threads.
void blis_matmul(float* C, const float* A, const float* B, int M, int N, int K, bool transA,
                 bool transB, float alpha, float beta, int lda, int ldb, int ldc);

}  // namespace switchlora::cpu
