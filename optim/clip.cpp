// Gradient clipping by global norm (DESIGN §5), as torch.nn.utils.clip_grad_norm_:
//   norm = sqrt(sum_i g_i^2);   if norm > max_norm: g *= max_norm / norm
// The sum runs in double on every backend: a float sum of millions of
// squares loses digits that decide whether a step is clipped at all.
#include <cmath>

#include "optim/adamw.h"

namespace switchlora {

float clip_grad_norm(float* grads, size_t n, float max_norm, Backend& be) {
  const double norm = std::sqrt(be.sum_squares(grads, n));
  // A non-finite norm leaves the gradients as they are, for the caller to
  // report: scaling by max_norm / inf would silently zero the finite ones.
  if (max_norm > 0.0f && std::isfinite(norm) && norm > max_norm) be.scale(grads, (float)(max_norm / norm), n);
  return (float)norm;
}

}  // namespace switchlora
