// The parameter updates besides AdamW: the squared norm and scaling that
// gradient clipping needs (optim/clip.cpp).
#include "engine/ops.h"

namespace switchlora::cpu {

// The sum runs in double: a float sum of millions of squares loses digits
// that decide whether a step is clipped at all.
double sum_squares(const float* x, size_t n) {
  double sum = 0.0;
#pragma omp parallel for reduction(+ : sum)
  for (size_t i = 0; i < n; i++) sum += (double)x[i] * x[i];
  return sum;
}

void scale(float* x, float a, size_t n) {
#pragma omp parallel for simd
  for (size_t i = 0; i < n; i++) x[i] *= a;
}

}  // namespace switchlora::cpu
