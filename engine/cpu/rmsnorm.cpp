// RMSNorm (Zhang & Sennrich 2019), as in LLaMA: no mean subtraction, no bias.
//   y = x * rstd * g,   rstd = 1 / sqrt(mean(x^2) + eps)
#include <omp.h>

#include <cmath>
#include <vector>

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
// One pass over the rows for both: each thread takes a block of rows, and
// sums dg over them in double (N = B * T reaches tens of thousands), and the
// threads' sums are added in thread order, so the bits depend on the thread
// count alone (as the GEMMs' do).
void rmsnorm_backward(float* dx, float* dg, const float* dy, const float* x,
                      const float* g, const float* rstd, int N, int C) {
  if (!dx && !dg) return;
  const int threads = omp_get_max_threads();
  std::vector<double> part(dg ? (size_t)threads * C : 0, 0.0);  // (threads, C); a thread not started adds 0
#pragma omp parallel
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t lo = N * t / nt, hi = N * (t + 1) / nt;
    double* acc = dg ? part.data() + (size_t)t * C : nullptr;
    for (int64_t n = lo; n < hi; n++) {
      const float* xn = x + n * C;
      const float* dyn = dy + n * C;
      const float r = rstd[n];
      if (dx) {
        float* dxn = dx + n * C;
        double dot = 0.0;  // sum_c dy * g * xhat, in double for the same reason as ss
#pragma omp simd reduction(+ : dot)
        for (int c = 0; c < C; c++) dot += (double)(dyn[c] * g[c]) * (xn[c] * r);
        const float m = (float)(dot / C);
#pragma omp simd
        for (int c = 0; c < C; c++) dxn[c] += r * (dyn[c] * g[c] - xn[c] * r * m);
      }
      if (acc)
#pragma omp simd
        for (int c = 0; c < C; c++) acc[c] += (double)(dyn[c] * xn[c] * r);
    }
  }
  if (dg)
    for (int c = 0; c < C; c++) {
      double sum = 0.0;
      for (int t = 0; t < threads; t++) sum += part[(size_t)t * C + c];
      dg[c] += (float)sum;
    }
}

}  // namespace switchlora::cpu
