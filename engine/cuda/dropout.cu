// Dropout with a counter-based mask, exactly as engine/cpu/dropout.cpp:
// engine/rng.h's hash compiles as device code, so each thread draws the
// number the CPU draws for its element.
#include "engine/cuda/common.cuh"
#include "engine/cuda/ops.h"
#include "engine/rng.h"

namespace switchlora::cuda {

__global__ void dropout_forward_kernel(float* out, const float* x, int64_t N, float p, float scale, uint64_t seed,
                                       uint64_t stream) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < N) out[i] = uniform01(seed, stream, (uint64_t)i) >= p ? x[i] * scale : 0.0f;
}

__global__ void dropout_backward_kernel(float* dx, const float* dout, int64_t N, float p, float scale,
                                        uint64_t seed, uint64_t stream) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < N && uniform01(seed, stream, (uint64_t)i) >= p) dx[i] += dout[i] * scale;
}

void dropout_forward(float* out, const float* x, int64_t N, float p, uint64_t seed, uint64_t stream) {
  dropout_forward_kernel<<<blocks_for(N), kBlock>>>(out, x, N, p, 1.0f / (1.0f - p), seed, stream);
  CUDA_CHECK_LAUNCH();
}

void dropout_backward(float* dx, const float* dout, int64_t N, float p, uint64_t seed, uint64_t stream) {
  dropout_backward_kernel<<<blocks_for(N), kBlock>>>(dx, dout, N, p, 1.0f / (1.0f - p), seed, stream);
  CUDA_CHECK_LAUNCH();
}

}  // namespace switchlora::cuda
