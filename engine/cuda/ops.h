// The CUDA backend's op set: the twins of engine/ops.h, one file per op
// (engine/cuda/X.cu), on DEVICE pointers (all fp32), which CudaBackend
// (engine/cuda/backend.cu) puts behind the Backend interface. The shapes and
// equations of every op, and the rules (forward overwrites, backward
// accumulates, a null gradient is skipped), are on the Backend:
// engine/backend.h. The names and argument order are the CPU's, except that
// an op that keeps state between calls takes the backend's Workspace first.
// Every call is queued on the default stream and returns without waiting,
// except cross_entropy_forward and sum_squares, which return a number to the
// host. Kernels cannot throw, so the checks the CPU ops make on token and
// target ids become NaN outputs here (see embedding.cu, cross_entropy.cu).
#pragma once
#include <cublas_v2.h>

#include <cstddef>
#include <cstdint>

#include "engine/backend.h"
#include "engine/step_counter.h"

namespace switchlora::cuda {

// Number of usable CUDA devices; 0 when there is no driver or no device
// (never throws, so callers can ask before deciding to use the GPU).
int device_count();

// Device memory an op keeps from one call to the next: grown on demand,
// never shrunk, freed with its owner. Growing frees the old memory first
// (cudaFree waits for the kernels still using it), so its contents are lost.
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch();
  void* get(size_t bytes);  // at least `bytes` of device memory, never null

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

// All the state the ops below keep between calls, so that none keeps any of
// its own: the CudaBackend (engine/cuda/backend.cu) owns one, on its GPU,
// and frees it with itself. The ops that need it take it first.
struct Workspace {
  Workspace();  // makes the cuBLAS handle on the current device
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  ~Workspace();
  cublasHandle_t blas = nullptr;            // matmul's
  Scratch sort_rows, sort_keys, sort_temp;  // embedding_backward's radix sort
  Scratch dg_partials;                      // rmsnorm_backward's partial sums of dg
  Scratch loss_sum;                         // cross_entropy_forward's sum of the losses
  Scratch sum_partials;                     // sum_squares' partial sums and their total
};

// ---------------------------------------------------------------- matmul
// Backend::gemm, engine/cuda/matmul.cu (cuBLAS). p is how it multiplies
// (fp32 storage in and out, fp32 accumulation in every mode):
//   kFp32  plain fp32 FMAs, no tensor cores;
//   kTf32  TF32 tensor cores, inputs rounded to 10 mantissa bits (H100/H200:
//          ~7x the fp32 rate);
//   kBf16  bf16 tensor cores, inputs rounded to 7 mantissa bits (~15x).
// kTf32 and kBf16 need an Ampere or newer GPU (CudaBackend checks).
void matmul(Workspace& ws, float* C, const float* A, const float* B, int M, int N, int K,
            bool transA, bool transB, float alpha, float beta, Precision p);

// ---------------------------------------------------------------- embedding
// Backend::embedding_forward, embedding_backward (deterministic: no atomics)
void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N, int C);
void embedding_backward(Workspace& ws, float* dwte, const float* dout, const int32_t* tokens,
                        int N, int C);

// ---------------------------------------------------------------- RMSNorm
// Backend::rmsnorm_forward, rmsnorm_backward
void rmsnorm_forward(float* y, float* rstd, const float* x, const float* g,
                     int N, int C, float eps);
void rmsnorm_backward(Workspace& ws, float* dx, float* dg, const float* dy, const float* x,
                      const float* g, const float* rstd, int N, int C);

// ---------------------------------------------------------------- RoPE
// Backend::rope_forward, rope_backward
void rope_forward(float* out, const float* x, int B, int T, int NH, int HS, float theta);
void rope_backward(float* dx, const float* dout, int B, int T, int NH, int HS, float theta);

// ---------------------------------------------------------------- attention
// Backend::attention_forward, attention_backward (HS at most 128)
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
// Backend::cross_entropy_forward (waits), cross_entropy_backward
float cross_entropy_forward(Workspace& ws, float* losses, float* lse, const float* logits,
                            const int32_t* targets, int N, int V);
void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                            const int32_t* targets, float scale, int N, int V);

// ---------------------------------------------------------------- updates
// Backend::adamw_update, sum_squares (in a fixed order: deterministic), scale.
void adamw_update(float* p, float* m, float* v, const float* g, int64_t* counters,
                  const uint8_t* frozen, int rows, int cols, StepCounter counter, float lr,
                  float beta1, float beta2, float eps, float weight_decay);
double sum_squares(Workspace& ws, const float* x, size_t n);
void scale(float* x, float a, size_t n);

}  // namespace switchlora::cuda
