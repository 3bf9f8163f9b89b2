// Gradient clipping by global norm (DESIGN §5), as torch.nn.utils.clip_grad_norm_:
//   norm = sqrt(sum_i g_i^2);   if norm > max_norm: g *= max_norm / norm
// The sum runs in double: a float sum of millions of squares loses digits
// that decide whether a step is clipped at all.
#include <cmath>

#include "optim/adamw.h"

namespace switchlora {

float clip_grad_norm(float* grads, size_t n, float max_norm) {
  double sum = 0.0;
#pragma omp parallel for reduction(+ : sum)
  for (size_t i = 0; i < n; i++) sum += (double)grads[i] * grads[i];
  const double norm = std::sqrt(sum);
  // A non-finite norm leaves the gradients as they are, for the caller to
  // report: scaling by max_norm / inf would silently zero the finite ones.
  if (max_norm > 0.0f && std::isfinite(norm) && norm > max_norm) {
    const float scale = (float)(max_norm / norm);
#pragma omp parallel for simd
    for (size_t i = 0; i < n; i++) grads[i] *= scale;
  }
  return (float)norm;
}

}  // namespace switchlora
