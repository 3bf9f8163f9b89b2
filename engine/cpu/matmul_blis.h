// BLIS for an OpenBLAS build's products but the weight gradients:
// engine/cpu/matmul_blis.cpp.
#pragma once

namespace switchlora::cpu {

// A product with a side at most this is skinny: LoRA's ranks (8-64 in the
// paper's table) and none of the model's other GEMMs. Skinny weight
// gradients (LoRA's dA, dB) go to BLIS too.
constexpr int kSkinnyMax = 64;
// C (M, N) = alpha op(A) op(B) + beta C, row-major with row strides lda,
// ldb, ldc; M, N, K > 0. On one thread inside an OpenMP region, else on the
// engine's threads.
void blis_matmul(float* C, const float* A, const float* B, int M, int N, int K, bool transA,
                 bool transB, float alpha, float beta, int lda, int ldb, int ldc);
// The same product through the linked CBLAS (OpenBLAS in a split build),
// packed row-major (lda = op(A) stored width, and so on); matmul.cpp.
void cblas_matmul(float* C, const float* A, const float* B, int M, int N, int K, bool transA,
                  bool transB, float alpha, float beta);

}  // namespace switchlora::cpu
