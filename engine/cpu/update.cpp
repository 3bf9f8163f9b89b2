// The parameter updates besides AdamW: the squared norm and scaling that
// gradient clipping needs (optim/clip.cpp), and SwitchLoRA's rank-1 W
// corrections (model/switchlora.cpp).
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

// W[o, :] += s B[o, slot] (A[slot, :] - c)
void switch_A_update(float* W, const float* B, const float* A, const float* c, float s,
                     int slot, int out, int in, int r) {
  const float* a = A + (size_t)slot * in;
#pragma omp parallel for
  for (int o = 0; o < out; o++) {
    const float sb = s * B[(size_t)o * r + slot];
    float* w = W + (size_t)o * in;
    for (int j = 0; j < in; j++) w[j] += sb * (a[j] - c[j]);
  }
}

// W[o, :] += s (B[o, slot] - c[o]) A[slot, :]
void switch_B_update(float* W, const float* B, const float* A, const float* c, float s,
                     int slot, int out, int in, int r) {
  const float* a = A + (size_t)slot * in;
#pragma omp parallel for
  for (int o = 0; o < out; o++) {
    const float sd = s * (B[(size_t)o * r + slot] - c[o]);
    float* w = W + (size_t)o * in;
    for (int j = 0; j < in; j++) w[j] += sd * a[j];
  }
}

}  // namespace switchlora::cpu
