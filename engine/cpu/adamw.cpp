// The AdamW update of one (rows, cols) tensor (optim/adamw.h), with its per-tensor,
// per-row or per-column step counters (DESIGN §5).
//
// The bias corrections depend only on a vector's counter, so they are
// computed once per vector, in double as PyTorch does with its Python floats:
//   s = lr / (1 - b1^k)          c = 1 / sqrt(1 - b2^k)
// and the element loop only does float arithmetic the compiler can vectorise:
//   m = b1 m + (1 - b1) g        v = b2 v + (1 - b2) g^2
//   p = p - (lr wd p + s m / (sqrt(v) c + eps))
// PyTorch applies the decay and the Adam step as two roundings of p; folding
// them into one subtraction is the same update with one rounding less.
#include <cmath>
#include <vector>

#include "engine/ops.h"

namespace switchlora::cpu {

namespace {

// Elements [0, n) that share one step size s and denominator scale c.
void adam_span(float* p, float* m, float* v, const float* g, size_t n, float b1,
               float b2, float eps, float lr_wd, float s, float c) {
  const float a1 = 1.0f - b1, a2 = 1.0f - b2;
#pragma omp simd
  for (size_t i = 0; i < n; i++) {
    float mi = b1 * m[i] + a1 * g[i];
    float vi = b2 * v[i] + a2 * g[i] * g[i];
    p[i] -= lr_wd * p[i] + s * mi / (std::sqrt(vi) * c + eps);
    m[i] = mi;
    v[i] = vi;
  }
}

// One row of a per-column tensor: column j has its own s[j], c[j]; a frozen
// column (live[j] == 0) writes back its old values, bit for bit. The select
// rather than a branch keeps the loop vectorisable.
void adam_row_per_column(float* p, float* m, float* v, const float* g, int n,
                         float b1, float b2, float eps, float lr_wd, const float* s,
                         const float* c, const uint8_t* live) {
  const float a1 = 1.0f - b1, a2 = 1.0f - b2;
#pragma omp simd
  for (int j = 0; j < n; j++) {
    float mi = b1 * m[j] + a1 * g[j];
    float vi = b2 * v[j] + a2 * g[j] * g[j];
    float pi = p[j] - (lr_wd * p[j] + s[j] * mi / (std::sqrt(vi) * c[j] + eps));
    p[j] = live[j] ? pi : p[j];
    m[j] = live[j] ? mi : m[j];
    v[j] = live[j] ? vi : v[j];
  }
}

}  // namespace

void adamw_update(float* p, float* m, float* v, const float* g, int64_t* k,
                  const uint8_t* frozen, int rows, int cols, StepCounter counter, float lr,
                  float b1, float b2, float eps, float weight_decay) {
  const float lr_wd = lr * weight_decay;
  const int nvec = num_counters(counter, rows, cols);
  std::vector<float> s(nvec), c(nvec);
  std::vector<uint8_t> live(nvec);
  // The counter goes up before the bias corrections, so the first step
  // uses k = 1 as in PyTorch.
  for (int i = 0; i < nvec; i++) {
    live[i] = !(frozen && frozen[i]);
    if (!live[i]) continue;
    k[i]++;
    s[i] = (float)(lr / (1.0 - std::pow((double)b1, (double)k[i])));
    c[i] = (float)(1.0 / std::sqrt(1.0 - std::pow((double)b2, (double)k[i])));
  }

  const int C = cols;
  if (counter == StepCounter::kPerColumn) {
#pragma omp parallel for
    for (int r = 0; r < rows; r++) {
      size_t o = (size_t)r * C;
      adam_row_per_column(p + o, m + o, v + o, g + o, C, b1, b2, eps, lr_wd, s.data(),
                          c.data(), live.data());
    }
    return;
  }
  // A row is a contiguous span with one step size: per row, its own; per
  // tensor, the tensor's.
  const bool per_row = counter == StepCounter::kPerRow;
#pragma omp parallel for
  for (int r = 0; r < rows; r++) {
    const int i = per_row ? r : 0;
    if (!live[i]) continue;
    size_t o = (size_t)r * C;
    adam_span(p + o, m + o, v + o, g + o, C, b1, b2, eps, lr_wd, s[i], c[i]);
  }
}

}  // namespace switchlora::cpu
