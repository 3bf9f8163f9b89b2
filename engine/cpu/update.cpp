// The parameter updates besides AdamW: the squared norm and scaling that
// gradient clipping needs (optim/clip.cpp).
#include <omp.h>

#include <vector>

#include "engine/ops.h"

namespace switchlora::cpu {

// The sum runs in double: a float sum of millions of squares loses digits
// that decide whether a step is clipped at all. Each thread sums its own
// range in kLanes independent double lanes (a single sum waits out every
// add's latency: 3x slower at the 20m size), and the threads' sums are added
// in thread order, so the result depends on the thread count alone.
double sum_squares(const float* x, size_t n) {
  constexpr int kLanes = 16;
  std::vector<double> part(omp_get_max_threads(), 0.0);
#pragma omp parallel
  {
    const size_t t = omp_get_thread_num(), threads = omp_get_num_threads();
    const size_t lo = n * t / threads, hi = n * (t + 1) / threads;
    double lane[kLanes] = {};
    size_t i = lo;
    for (; i + kLanes <= hi; i += kLanes)
#pragma omp simd
      for (int j = 0; j < kLanes; j++) lane[j] += (double)x[i + j] * x[i + j];
    double sum = 0.0;
    for (; i < hi; i++) sum += (double)x[i] * x[i];
    for (int j = 0; j < kLanes; j++) sum += lane[j];
    part[t] = sum;
  }
  double sum = 0.0;
  for (double p : part) sum += p;
  return sum;
}

void scale(float* x, float a, size_t n) {
#pragma omp parallel for simd
  for (size_t i = 0; i < n; i++) x[i] *= a;
}

}  // namespace switchlora::cpu
