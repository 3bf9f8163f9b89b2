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

// Grid (kSumBlocks), block (kBlock).   x: (n)   partials: (kSumBlocks)
__global__ void sum_squares_partial_kernel(double* partials, const float* x, size_t n) {
  __shared__ double scratch[kWarp];
  const size_t stride = (size_t)kSumBlocks * kBlock;
  double acc = 0.0;
  for (size_t i = (size_t)blockIdx.x * kBlock + threadIdx.x; i < n; i += stride)
    acc += (double)x[i] * x[i];
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

// One block of kSumBlocks (= 1024, the block-size limit) threads, one partial each.
__global__ void sum_squares_total_kernel(double* total, const double* partials) {
  __shared__ double scratch[kWarp];
  double acc = block_sum(partials[threadIdx.x], scratch);
  if (threadIdx.x == 0) *total = acc;
}

// The two passes' scratch, the kSumBlocks partial sums and their total
// (8 KB), is the workspace's: allocated by the first call, kept for the rest.
double sum_squares(Workspace& ws, const float* x, size_t n) {
  if (n == 0) return 0.0;
  double* partials = (double*)ws.sum_partials.get((kSumBlocks + 1) * sizeof(double));
  double* total_d = partials + kSumBlocks;
  sum_squares_partial_kernel<<<kSumBlocks, kBlock>>>(partials, x, n);
  CUDA_CHECK_LAUNCH();
  sum_squares_total_kernel<<<1, kSumBlocks>>>(total_d, partials);
  CUDA_CHECK_LAUNCH();
  double total = 0.0;
  // Synchronous on the default stream: waits for both kernels.
  CUDA_CHECK(cudaMemcpy(&total, total_d, sizeof(double), cudaMemcpyDeviceToHost));
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
