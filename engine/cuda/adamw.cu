// The AdamW step of optim/adamw.cpp for one (rows, cols) tensor,
// with its per-tensor, per-row or per-column step counters (DESIGN §5):
//   m = b1 m + (1 - b1) g        v = b2 v + (1 - b2) g^2
//   s = lr / (1 - b1^k)          c = 1 / sqrt(1 - b2^k)     k: the vector's counter
//   p = p - (lr wd p + s m / (sqrt(v) c + eps))
// Two kernels: the first increments the counters of the live vectors, the
// second updates every element of a live vector.
#include <string>

#include "engine/cuda/common.cuh"
#include "engine/cuda/ops.h"

namespace switchlora::cuda {

// counters, frozen: (nvec); frozen may be null (none frozen).
__global__ void adamw_count_kernel(int64_t* counters, const uint8_t* frozen, int nvec) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < nvec && !(frozen && frozen[i])) counters[i]++;
}

// One thread per element of the (rows, cols) tensor. `per` says which index
// picks the counter: 0 = one for the tensor, 1 = the row, 2 = the column.
// The bias corrections are computed per element, in double as the CPU does
// per vector, from the counter the first kernel has just incremented: two
// pow() per element, cheap next to the 28 bytes of traffic per element, and
// no per-vector scratch to manage.
__global__ void adamw_update_kernel(float* p, float* m, float* v, const float* g,
                                    const int64_t* counters, const uint8_t* frozen, int rows,
                                    int cols, int per, float b1, float b2, float eps,
                                    float lr, float lr_wd) {
  int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (int64_t)rows * cols) return;
  int vec = per == 0 ? 0 : per == 1 ? (int)(e / cols) : (int)(e % cols);
  if (frozen && frozen[vec]) return;
  double k = (double)counters[vec];
  float s = (float)(lr / (1.0 - pow((double)b1, k)));
  float c = (float)(1.0 / sqrt(1.0 - pow((double)b2, k)));
  float gi = g[e];
  float mi = b1 * m[e] + (1.0f - b1) * gi;
  float vi = b2 * v[e] + (1.0f - b2) * gi * gi;
  p[e] -= lr_wd * p[e] + s * mi / (sqrtf(vi) * c + eps);
  m[e] = mi;
  v[e] = vi;
}

void adamw_update(float* p, float* m, float* v, const float* g, int64_t* counters,
                  const uint8_t* frozen, int rows, int cols, StepCounter counter, float lr,
                  float beta1, float beta2, float eps, float weight_decay) {
  SL_CHECK(rows >= 1 && cols >= 1, "adamw_update: a tensor of shape (" + std::to_string(rows) + ", " +
                                       std::to_string(cols) + ")");
  const int per = counter == StepCounter::kPerRow ? 1 : counter == StepCounter::kPerColumn ? 2 : 0;
  const int nvec = num_counters(counter, rows, cols);
  adamw_count_kernel<<<blocks_for(nvec), kBlock>>>(counters, frozen, nvec);
  CUDA_CHECK_LAUNCH();
  const int64_t n = (int64_t)rows * cols;
  adamw_update_kernel<<<blocks_for(n), kBlock>>>(p, m, v, g, counters, frozen, rows, cols, per, beta1,
                                                 beta2, eps, lr, lr * weight_decay);
  CUDA_CHECK_LAUNCH();
}

}  // namespace switchlora::cuda
