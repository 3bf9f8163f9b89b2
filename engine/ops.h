// The CPU backend's op set: plain functions over host float arrays, one file
// per op (engine/cpu/X.cpp), which CpuBackend (engine/cpu/backend.cpp) puts
// behind the Backend interface. The shapes and equations of every op, and
// the rules (forward overwrites, backward accumulates, a null gradient is
// skipped), are on the Backend: engine/backend.h. The CUDA twins
// (engine/cuda/ops.h) have the same names and argument order.
#pragma once
#include <cstddef>
#include <cstdint>

#include "engine/step_counter.h"

namespace switchlora::cpu {

// ---------------------------------------------------------------- matmul
// Backend::matmul (at fp32), engine/cpu/matmul.cpp, on the GEMM libraries
// this build links (CMake's SWITCHLORA_BLAS): "openblas", "blis" or "eigen".
// An OpenBLAS build that found BLIS (CMake's SWITCHLORA_SPLIT_GEMM) gives
// each library the products it was measured faster at: OpenBLAS the weight
// gradients dy^T x of the model's layers, BLIS all the rest.
const char* gemm_library();                   // every product but those
const char* weight_gradient_gemm_library();  // dW = dy^T x, no side <= kSkinnyMax
void matmul(float* C, const float* A, const float* B, int M, int N, int K,
            bool transA, bool transB, float alpha = 1.0f, float beta = 0.0f);
// The same product, for the small per-head products (64 x T x 64) attention
// runs inside its own OpenMP loop (where it runs on the calling thread
// alone; called outside one, it may use the engine's threads), with each
// matrix's row stride given (lda, ldb, ldc: a head's K^T is a (HS, ns) block
// of a (HS, T) array). Through BLIS where the build has it (its typed API,
// 1.2-1.3x Eigen at these shapes without a transpose of B), else Eigen; never
// OpenBLAS, whose fixed cost per call (its buffers, packing a 64-row panel)
// is a large share of such a product (docs/PERFORMANCE.md).
void matmul_in_thread(float* C, const float* A, const float* B, int M, int N, int K, bool transA,
                      bool transB, float alpha, float beta, int lda, int ldb, int ldc);
// Gradients of C = op(A) @ op(B) (alpha = 1):  dA += ..., dB += ...
void matmul_backward(float* dA, float* dB, const float* dC, const float* A,
                     const float* B, int M, int N, int K, bool transA, bool transB);
// Backend::linear_forward, linear_backward
void linear_forward(float* y, const float* x, const float* W, int N, int in, int out);
void linear_backward(float* dx, float* dW, const float* dy, const float* x,
                     const float* W, int N, int in, int out);

// ---------------------------------------------------------------- embedding
// Backend::embedding_forward, embedding_backward
void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N, int C);
void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C);

// ---------------------------------------------------------------- RMSNorm
// Backend::rmsnorm_forward, rmsnorm_backward
void rmsnorm_forward(float* y, float* rstd, const float* x, const float* g,
                     int N, int C, float eps);
void rmsnorm_backward(float* dx, float* dg, const float* dy, const float* x,
                      const float* g, const float* rstd, int N, int C);

// ---------------------------------------------------------------- RoPE
// Backend::rope_forward, rope_backward
void rope_forward(float* out, const float* x, int B, int T, int NH, int HS, float theta);
void rope_backward(float* dx, const float* dout, int B, int T, int NH, int HS, float theta);

// ---------------------------------------------------------------- attention
// Backend::attention_forward, attention_backward
void attention_forward(float* out, float* lse, const float* q, const float* k,
                       const float* v, int B, int T, int NH, int HS);
void attention_backward(float* dq, float* dk, float* dv, const float* dout,
                        const float* q, const float* k, const float* v,
                        const float* out, const float* lse, int B, int T, int NH, int HS);

// ---------------------------------------------------------------- SwiGLU
// Backend::dropout_forward, dropout_backward
void dropout_forward(float* out, const float* x, int64_t N, float p, uint64_t seed, uint64_t stream);
void dropout_backward(float* dx, const float* dout, int64_t N, float p, uint64_t seed, uint64_t stream);
// Backend::swiglu_forward, swiglu_backward
void swiglu_forward(float* out, const float* gate, const float* up, int64_t N);
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                     const float* up, int64_t N);

// ---------------------------------------------------------------- residual
// Backend::residual_forward
void residual_forward(float* out, const float* a, const float* b, int64_t N);

// ---------------------------------------------------------------- cross-entropy
// Backend::cross_entropy_forward, cross_entropy_backward
float cross_entropy_forward(float* losses, float* lse, const float* logits,
                            const int32_t* targets, int N, int V);
void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                            const int32_t* targets, float scale, int N, int V);

// ---------------------------------------------------------------- updates
// Backend::adamw_update, sum_squares, scale.
void adamw_update(float* p, float* m, float* v, const float* g, int64_t* counters,
                  const uint8_t* frozen, int rows, int cols, StepCounter counter, float lr,
                  float beta1, float beta2, float eps, float weight_decay);
double sum_squares(const float* x, size_t n);
void scale(float* x, float a, size_t n);

}  // namespace switchlora::cpu
