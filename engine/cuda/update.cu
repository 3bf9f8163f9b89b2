// The parameter updates besides AdamW, twins of engine/cpu/update.cpp: the
// squared norm and the scaling that gradient clipping needs (optim/clip.cpp).
// SwitchLoRA's W corrections are in switch.cu.
#include "engine/cuda/common.cuh"
#include "engine/cuda/ops.h"

namespace switchlora::cuda {

// sum_squares runs on a FIXED grid of kSumBlocks x kBlock threads whatever n
// is: thread i of the grid adds x[i], x[i + grid], x[i + 2 grid], ... in
// double, each block reduces its threads in a fixed order into one partial
// sum, and a second one-block kernel adds the partial sums in a fixed order.
// No atomics, so the same x gives the same bits on every run, which
// clipping needs for runs to be reproducible. 1024 blocks fill an H200's 132
// SMs several times over; the second pass reads only 8 KB.
constexpr int kSumBlocks = 1024;

// Scratch of the two passes: static device memory, allocated once when the
// module loads (8 KB), so no call allocates.
__device__ double sum_partials[kSumBlocks];
__device__ double sum_total;

// Grid (kSumBlocks), block (kBlock).   x: (n)
__global__ void sum_squares_partial_kernel(const float* x, size_t n) {
  __shared__ double scratch[kWarp];
  const size_t stride = (size_t)kSumBlocks * kBlock;
  double acc = 0.0;
  for (size_t i = (size_t)blockIdx.x * kBlock + threadIdx.x; i < n; i += stride)
    acc += (double)x[i] * x[i];
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) sum_partials[blockIdx.x] = acc;
}

// One block of kSumBlocks (= 1024, the block-size limit) threads, one partial each.
__global__ void sum_squares_total_kernel() {
  __shared__ double scratch[kWarp];
  double acc = block_sum(sum_partials[threadIdx.x], scratch);
  if (threadIdx.x == 0) sum_total = acc;
}

double sum_squares(const float* x, size_t n) {
  if (n == 0) return 0.0;
  sum_squares_partial_kernel<<<kSumBlocks, kBlock>>>(x, n);
  CUDA_CHECK_LAUNCH();
  sum_squares_total_kernel<<<1, kSumBlocks>>>();
  CUDA_CHECK_LAUNCH();
  double total = 0.0;
  // Synchronous on the default stream: waits for both kernels.
  CUDA_CHECK(cudaMemcpyFromSymbol(&total, sum_total, sizeof(double)));
  return total;
}

// x *= a, one thread per element.
__global__ void scale_kernel(float* x, float a, size_t n) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] *= a;
}

void scale(float* x, float a, size_t n) {
  if (n == 0) return;
  scale_kernel<<<blocks_for((int64_t)n), kBlock>>>(x, a, n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace switchlora::cuda
