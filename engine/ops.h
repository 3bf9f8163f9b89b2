// The op set of the CPU backend (DESIGN §2). Every op is a hand-written
// forward/backward pair over plain float arrays:
//   - forward functions overwrite their outputs;
//   - backward functions ACCUMULATE (+=) into gradient buffers, so zeroing the
//     gradients is one explicit step per optimizer step. A null gradient
//     pointer means "not needed" and is skipped.
// The CUDA backend (engine/cuda/) has the same names and argument order.
//
// Dimension names as in llm.c: B batch, T time, C channels, NH heads,
// HS head size (C = NH * HS), V vocabulary, N = B * T rows.
#pragma once
#include <cstddef>
#include <cstdint>

#include "optim/optim_param.h"

namespace switchlora::cpu {

// ---------------------------------------------------------------- matmul
// C (M, N) = alpha * op(A) @ op(B) + beta * C   -- the only BLAS call site.
// op(A) is (M, K): A is stored (M, K), or (K, M) when transA.
// op(B) is (K, N): B is stored (K, N), or (N, K) when transB.
// Row-major, contiguous. beta = 0 overwrites C (C may be uninitialised).
void matmul(float* C, const float* A, const float* B, int M, int N, int K,
            bool transA, bool transB, float alpha = 1.0f, float beta = 0.0f);
// Gradients of C = op(A) @ op(B) (alpha = 1):  dA += ..., dB += ...
void matmul_backward(float* dA, float* dB, const float* dC, const float* A,
                     const float* B, int M, int N, int K, bool transA, bool transB);

// Linear layer without bias, weights in PyTorch's (out, in) layout:
// y (N, out) = x (N, in) @ W^T  with W (out, in).
void linear_forward(float* y, const float* x, const float* W, int N, int in, int out);
// dx (N, in) += dy @ W;   dW (out, in) += dy^T @ x
void linear_backward(float* dx, float* dW, const float* dy, const float* x,
                     const float* W, int N, int in, int out);

// ---------------------------------------------------------------- embedding
// out (N, C) = wte[tokens[n], :]     tokens (N), wte (V, C)
void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N, int C);
// dwte[tokens[n], :] += dout[n, :]
void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C);

// ---------------------------------------------------------------- RMSNorm
// y = x / sqrt(mean(x^2) + eps) * g
// x, y: (N, C)   g: (C)   rstd: (N) saved for backward
void rmsnorm_forward(float* y, float* rstd, const float* x, const float* g,
                     int N, int C, float eps);
// dx += ..., dg += ...
void rmsnorm_backward(float* dx, float* dg, const float* dy, const float* x,
                      const float* g, const float* rstd, int N, int C);

// ---------------------------------------------------------------- RoPE
// Rotary position embedding in HF LLaMA's "rotate_half" convention: within
// each head, element i pairs with element i + HS/2 (i < HS/2) and the pair is
// rotated by angle t * theta^(-2i/HS), t the position in the sequence:
//   out[i]        = x[i] cos - x[i + HS/2] sin
//   out[i + HS/2] = x[i + HS/2] cos + x[i] sin
// x, out: (B, T, NH, HS), i.e. the (N, C) output of a q or k projection.
void rope_forward(float* out, const float* x, int B, int T, int NH, int HS, float theta);
// dx += R^T dout  (the inverse rotation)
void rope_backward(float* dx, const float* dout, int B, int T, int NH, int HS, float theta);

// ---------------------------------------------------------------- attention
// Causal multi-head attention with a fused softmax, scale 1/sqrt(HS):
//   out[t] = sum_{s<=t} softmax_s(q[t].k[s] / sqrt(HS)) v[s]
// q, k, v, out: (B, T, NH, HS).   lse: (B, NH, T), the log-sum-exp of each
// softmax row, saved so that backward recomputes the probabilities instead of
// storing the (T, T) matrix (the flash-attention trick).
void attention_forward(float* out, float* lse, const float* q, const float* k,
                       const float* v, int B, int T, int NH, int HS);
// dq, dk, dv += ...   (out and lse are the forward's)
void attention_backward(float* dq, float* dk, float* dv, const float* dout,
                        const float* q, const float* k, const float* v,
                        const float* out, const float* lse, int B, int T, int NH, int HS);

// ---------------------------------------------------------------- SwiGLU
// out = silu(gate) * up,  silu(x) = x * sigmoid(x).   all (N) elements
void swiglu_forward(float* out, const float* gate, const float* up, int64_t N);
// dgate += ..., dup += ...
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                     const float* up, int64_t N);

// ---------------------------------------------------------------- residual
// out = a + b   (N) elements; out may alias a or b
void residual_forward(float* out, const float* a, const float* b, int64_t N);

// ---------------------------------------------------------------- cross-entropy
// Fused log-softmax + cross-entropy over the vocabulary:
//   losses[n] = logsumexp(logits[n, :]) - logits[n, targets[n]]
// logits: (N, V)   targets: (N), each in [0, V)   losses, lse: (N)
// Returns the mean of losses (accumulated in double).
float cross_entropy_forward(float* losses, float* lse, const float* logits,
                            const int32_t* targets, int N, int V);
// dlogits[n, :] += scale * (softmax(logits[n, :]) - onehot(targets[n]))
// The model passes scale = 1 / (N * grad_accum_steps) for a mean loss.
void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                            const int32_t* targets, float scale, int N, int V);

// ---------------------------------------------------------------- updates
// One AdamW step of tensor t of the trainable buffer (optim/adamw.h): params,
// m, v, grads are whole buffers, t.offset locates the tensor; counters and
// frozen hold one entry per vector of t (frozen may be null: none frozen).
void adamw_update(float* params, float* m, float* v, const float* grads, int64_t* counters,
                  const uint8_t* frozen, const OptimParam& t, const AdamWConfig& config,
                  float lr);
// sum_i x_i^2 in double;  x *= a
double sum_squares(const float* x, size_t n);
void scale(float* x, float a, size_t n);
// SwitchLoRA's W corrections, W (out, in), B (out, r), A (r, in):
//   switch_A_update, c (in):    W += s B[:, slot] (A[slot, :] - c)
//   switch_B_update, c (out):   W += s (B[:, slot] - c) A[slot, :]
void switch_A_update(float* W, const float* B, const float* A, const float* c, float s,
                     int slot, int out, int in, int r);
void switch_B_update(float* W, const float* B, const float* A, const float* c, float s,
                     int slot, int out, int in, int r);

}  // namespace switchlora::cpu
