// RMSNorm (Zhang & Sennrich 2019), as in LLaMA: no mean subtraction, no bias.
//   y = x * rstd * g,   rstd = 1 / sqrt(mean(x^2) + eps)
// Sums over channels are in double as on the CPU (engine/cpu/rmsnorm.cpp).
#include <algorithm>

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

// dg[c] += sum_n dy[n, c] * xhat[n, c], a sum over all N rows, in two
// passes so that a large N (65536 rows at 130m's bench batch) spreads over
// the whole GPU and the result is still deterministic (no atomics):
//   1. block (x, y) owns kWarp channels (coalesced reads along a row) and the
//      y-th chunk of rows; its kRowsPerBlock rows of threads split the chunk
//      and add their partial sums in a fixed order into partial[y, c];
//   2. one thread per channel adds the chunks' partials in order.
constexpr int kRowsPerBlock = 16;
constexpr int kMaxRowChunks = 128;

__global__ void rmsnorm_backward_dg_partial_kernel(double* partial, const float* dy,
                                                   const float* x, const float* rstd, int N,
                                                   int C, int rows_per_chunk) {
  __shared__ double part[kRowsPerBlock][kWarp];
  const int c = blockIdx.x * kWarp + threadIdx.x;
  const int n_end = min(N, (int)((blockIdx.y + 1) * rows_per_chunk));
  double acc = 0.0;
  if (c < C)
    for (int n = blockIdx.y * rows_per_chunk + threadIdx.y; n < n_end; n += kRowsPerBlock) {
      int64_t i = (int64_t)n * C + c;
      acc += (double)(dy[i] * x[i] * rstd[n]);
    }
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    for (int k = 1; k < kRowsPerBlock; k++) acc += part[k][threadIdx.x];
    partial[(int64_t)blockIdx.y * C + c] = acc;
  }
}

__global__ void rmsnorm_backward_dg_sum_kernel(float* dg, const double* partial, int chunks, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  double s = 0.0;
  for (int k = 0; k < chunks; k++) s += partial[(int64_t)k * C + c];
  dg[c] += (float)s;
}

void rmsnorm_forward(float* y, float* rstd, const float* x, const float* g,
                     int N, int C, float eps) {
  if (N == 0) return;
  rmsnorm_forward_kernel<<<N, kBlock>>>(y, rstd, x, g, C, eps);
  CUDA_CHECK_LAUNCH();
}

void rmsnorm_backward(Workspace& ws, float* dx, float* dg, const float* dy, const float* x,
                      const float* g, const float* rstd, int N, int C) {
  if (N == 0) return;
  if (dx) {
    rmsnorm_backward_dx_kernel<<<N, kBlock>>>(dx, dy, x, g, rstd, C);
    CUDA_CHECK_LAUNCH();
  }
  if (dg) {
    // About 512 rows a chunk, at most kMaxRowChunks chunks.
    const int chunks = std::min(kMaxRowChunks, (N + 511) / 512);
    const int rows_per_chunk = (N + chunks - 1) / chunks;
    // (chunks, C), scratch of the workspace
    double* partial = (double*)ws.dg_partials.get((size_t)chunks * C * sizeof(double));
    const dim3 grid(blocks_for(C, kWarp), chunks);
    rmsnorm_backward_dg_partial_kernel<<<grid, dim3(kWarp, kRowsPerBlock)>>>(partial, dy, x, rstd, N,
                                                                            C, rows_per_chunk);
    CUDA_CHECK_LAUNCH();
    rmsnorm_backward_dg_sum_kernel<<<blocks_for(C), kBlock>>>(dg, partial, chunks, C);
    CUDA_CHECK_LAUNCH();
  }
}

}  // namespace switchlora::cuda
