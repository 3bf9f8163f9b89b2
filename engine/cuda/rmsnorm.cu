// RMSNorm (Zhang & Sennrich 2019), as in LLaMA: no mean subtraction, no bias.
//   y = x * rstd * g,   rstd = 1 / sqrt(mean(x^2) + eps)
// Sums over channels are in double as on the CPU (engine/cpu/rmsnorm.cpp).
#include "engine/cuda/common.cuh"
#include "engine/cuda/ops.h"

namespace switchlora::cuda {

// One block per row n.   x, y: (N, C)   g: (C)   rstd: (N)
__global__ void rmsnorm_forward_kernel(float* y, float* rstd, const float* x, const float* g,
                                       int C, float eps) {
  __shared__ double scratch[kWarp];
  const float* xn = x + (int64_t)blockIdx.x * C;
  float* yn = y + (int64_t)blockIdx.x * C;
  double ss = 0.0;
  for (int c = threadIdx.x; c < C; c += blockDim.x) ss += (double)xn[c] * xn[c];
  ss = block_sum(ss, scratch);
  float r = (float)(1.0 / sqrt(ss / C + eps));
  if (threadIdx.x == 0) rstd[blockIdx.x] = r;
  for (int c = threadIdx.x; c < C; c += blockDim.x) yn[c] = xn[c] * r * g[c];
}

// One block per row n:
//   dx += rstd * (dy * g - xhat * mean(dy * g * xhat)),   xhat = x * rstd
__global__ void rmsnorm_backward_dx_kernel(float* dx, const float* dy, const float* x,
                                           const float* g, const float* rstd, int C) {
  __shared__ double scratch[kWarp];
  const int64_t off = (int64_t)blockIdx.x * C;
  const float r = rstd[blockIdx.x];
  double dot = 0.0;
  for (int c = threadIdx.x; c < C; c += blockDim.x)
    dot += (double)(dy[off + c] * g[c]) * (x[off + c] * r);
  float m = (float)(block_sum(dot, scratch) / C);
  for (int c = threadIdx.x; c < C; c += blockDim.x)
    dx[off + c] += r * (dy[off + c] * g[c] - x[off + c] * r * m);
}

// dg[c] += sum_n dy[n, c] * xhat[n, c], a sum over all N rows. A block owns
// kWarp channels (coalesced reads along a row); its kRowsPerBlock warps-worth
// of threads split the rows, and their partial sums are added in a fixed
// order, so the result is deterministic (no atomics).
constexpr int kRowsPerBlock = 16;

__global__ void rmsnorm_backward_dg_kernel(float* dg, const float* dy, const float* x,
                                           const float* rstd, int N, int C) {
  __shared__ double partial[kRowsPerBlock][kWarp];
  const int c = blockIdx.x * kWarp + threadIdx.x;
  double acc = 0.0;
  if (c < C)
    for (int n = threadIdx.y; n < N; n += kRowsPerBlock) {
      int64_t i = (int64_t)n * C + c;
      acc += (double)(dy[i] * x[i] * rstd[n]);
    }
  partial[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    for (int k = 1; k < kRowsPerBlock; k++) acc += partial[k][threadIdx.x];
    dg[c] += (float)acc;
  }
}

void rmsnorm_forward(float* y, float* rstd, const float* x, const float* g,
                     int N, int C, float eps) {
  if (N == 0) return;
  rmsnorm_forward_kernel<<<N, kBlock>>>(y, rstd, x, g, C, eps);
  CUDA_CHECK_LAUNCH();
}

void rmsnorm_backward(float* dx, float* dg, const float* dy, const float* x,
                      const float* g, const float* rstd, int N, int C) {
  if (N == 0) return;
  if (dx) {
    rmsnorm_backward_dx_kernel<<<N, kBlock>>>(dx, dy, x, g, rstd, C);
    CUDA_CHECK_LAUNCH();
  }
  if (dg) {
    rmsnorm_backward_dg_kernel<<<blocks_for(C, kWarp), dim3(kWarp, kRowsPerBlock)>>>(
        dg, dy, x, rstd, N, C);
    CUDA_CHECK_LAUNCH();
  }
}

}  // namespace switchlora::cuda
