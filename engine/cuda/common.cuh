// What every kernel file shares: the checking macros for CUDA and cuBLAS
// calls, launch sizes, and the warp and block reductions.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "engine/cuda/check.h"

// One macro per library: CUDA_CHECK (engine/cuda/check.h) for the runtime,
// this one for cuBLAS; both name the failed call, its error string, file and line.
#define CUBLAS_CHECK(call)                                                                   \
  do {                                                                                       \
    cublasStatus_t st_ = (call);                                                             \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                        \
      ::switchlora::cuda::throw_cuda(#call, cublasGetStatusString(st_), __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: a bad launch configuration is reported here; a fault
// inside the kernel surfaces at the next synchronising call.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

namespace switchlora::cuda {

constexpr int kWarp = 32;
constexpr int kBlock = 256;  // threads per block of the elementwise and row kernels

// Blocks of `threads` that cover n elements (at least one, so a launch is valid).
inline unsigned int blocks_for(int64_t n, int threads = kBlock) {
  int64_t b = (n + threads - 1) / threads;
  return (unsigned int)(b > 0 ? b : 1);
}

__device__ inline float warp_sum(float x) {
  for (int o = kWarp / 2; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

__device__ inline float warp_max(float x) {
  for (int o = kWarp / 2; o > 0; o /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

__device__ inline double warp_sum(double x) {
  for (int o = kWarp / 2; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// Sum or max over the whole block (blockDim.x a multiple of 32, at most
// 1024); every thread gets the result, combined in the same warp order each
// time. `scratch` holds one value per warp; the trailing __syncthreads lets the
// caller reuse it for the next reduction.
template <typename F>
__device__ inline F block_sum(F x, F* scratch) {
  x = warp_sum(x);
  if (threadIdx.x % kWarp == 0) scratch[threadIdx.x / kWarp] = x;
  __syncthreads();
  x = scratch[0];
  for (int w = 1; w < (int)blockDim.x / kWarp; w++) x += scratch[w];
  __syncthreads();
  return x;
}

__device__ inline float block_max(float x, float* scratch) {
  x = warp_max(x);
  if (threadIdx.x % kWarp == 0) scratch[threadIdx.x / kWarp] = x;
  __syncthreads();
  x = scratch[0];
  for (int w = 1; w < (int)blockDim.x / kWarp; w++) x = fmaxf(x, scratch[w]);
  __syncthreads();
  return x;
}

}  // namespace switchlora::cuda
