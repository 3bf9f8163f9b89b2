// RMSNorm (Zhang & Sennrich 2019), as in LLaMA: no mean subtraction, no bias.
//   y = x * rstd * g,   rstd = 1 / sqrt(mean(x^2) + eps)
#include <algorithm>
#include <cmath>

#include "engine/ops.h"

namespace switchlora::cpu {

// x, y: (N, C)   g: (C)   rstd: (N)
void rmsnorm_forward(float* y, float* rstd, const float* x, const float* g,
                     int N, int C, float eps) {
#pragma omp parallel for
  for (int n = 0; n < N; n++) {
    const float* xn = x + (int64_t)n * C;
    float* yn = y + (int64_t)n * C;
    // The mean of squares is summed in double: C reaches 4096 and the result
    // scales every element of the row.
    double ss = 0.0;
#pragma omp simd reduction(+ : ss)
    for (int c = 0; c < C; c++) ss += (double)xn[c] * xn[c];
    float r = (float)(1.0 / std::sqrt(ss / C + eps));
    rstd[n] = r;
#pragma omp simd
    for (int c = 0; c < C; c++) yn[c] = xn[c] * r * g[c];
  }
}

// With xhat = x * rstd and y = xhat * g:
//   dg += sum_n dy * xhat
//   dx += rstd * (dy * g - xhat * mean(dy * g * xhat))
// (the second term is the derivative through rstd, which depends on all of x).
void rmsnorm_backward(float* dx, float* dg, const float* dy, const float* x,
                      const float* g, const float* rstd, int N, int C) {
  if (dx) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
      const float* xn = x + (int64_t)n * C;
      const float* dyn = dy + (int64_t)n * C;
      float* dxn = dx + (int64_t)n * C;
      float r = rstd[n];
      double dot = 0.0;  // sum_c dy * g * xhat, double for the same reason as ss
#pragma omp simd reduction(+ : dot)
      for (int c = 0; c < C; c++) dot += (double)(dyn[c] * g[c]) * (xn[c] * r);
      float m = (float)(dot / C);
#pragma omp simd
      for (int c = 0; c < C; c++) dxn[c] += r * (dyn[c] * g[c] - xn[c] * r * m);
    }
  }
  if (dg) {
    // dg sums over all N = B * T rows (tens of thousands): each thread owns a
    // block of channels (no races) and sums it in double.
    constexpr int kBlock = 64;
    int nblocks = (C + kBlock - 1) / kBlock;
#pragma omp parallel for
    for (int blk = 0; blk < nblocks; blk++) {
      int c0 = blk * kBlock, c1 = std::min(C, c0 + kBlock);
      double acc[kBlock] = {};
      for (int n = 0; n < N; n++) {
        const float* xn = x + (int64_t)n * C;
        const float* dyn = dy + (int64_t)n * C;
        float r = rstd[n];
#pragma omp simd
        for (int c = c0; c < c1; c++) acc[c - c0] += (double)(dyn[c] * xn[c] * r);
      }
      for (int c = c0; c < c1; c++) dg[c] += (float)acc[c - c0];
    }
  }
}

}  // namespace switchlora::cpu
