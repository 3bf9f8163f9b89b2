// Token embedding lookup: out[n, :] = wte[tokens[n], :].
#include <cmath>

#include "engine/cuda/common.cuh"
#include "engine/cuda/ops.h"

namespace switchlora::cuda {

// One thread per output element. The op is not told V, so as on the CPU
// only a negative id can be caught; a kernel cannot throw, so that row
// becomes NaN, which the loss then shows.
__global__ void embedding_forward_kernel(float* out, const int32_t* tokens, const float* wte,
                                         int N, int C) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (int64_t)N * C) return;
  int n = (int)(i / C), c = (int)(i % C);
  int32_t tok = tokens[n];
  out[i] = tok >= 0 ? wte[(int64_t)tok * C + c] : NAN;
}

// dwte[tokens[n], c] += dout[n, c] with one atomicAdd per element: a token
// that occurs in many rows is summed in whatever order the rows arrive, so
// the result can differ between runs in the last bits (NOT deterministic).
// A deterministic version would sort the rows by token first (llm.c's
// encoder_backward does); rows with a negative id are skipped.
__global__ void embedding_backward_kernel(float* dwte, const float* dout, const int32_t* tokens,
                                          int N, int C) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (int64_t)N * C) return;
  int n = (int)(i / C), c = (int)(i % C);
  int32_t tok = tokens[n];
  if (tok >= 0) atomicAdd(dwte + (int64_t)tok * C + c, dout[i]);
}

void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N, int C) {
  embedding_forward_kernel<<<blocks_for((int64_t)N * C), kBlock>>>(out, tokens, wte, N, C);
  CUDA_CHECK_LAUNCH();
}

void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C) {
  if (!dwte) return;
  embedding_backward_kernel<<<blocks_for((int64_t)N * C), kBlock>>>(dwte, dout, tokens, N, C);
  CUDA_CHECK_LAUNCH();
}

}  // namespace switchlora::cuda
