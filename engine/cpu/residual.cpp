// Residual connection: out = a + b. Its backward passes dout to both inputs.
#include "engine/ops.h"

namespace switchlora::cpu {

// out may alias a or b: each element is read before it is written.
void residual_forward(float* out, const float* a, const float* b, int64_t N) {
#pragma omp parallel for simd
  for (int64_t i = 0; i < N; i++) out[i] = a[i] + b[i];
}

// da += dout, db += dout
void residual_backward(float* da, float* db, const float* dout, int64_t N) {
  if (da) {
#pragma omp parallel for simd
    for (int64_t i = 0; i < N; i++) da[i] += dout[i];
  }
  if (db) {
#pragma omp parallel for simd
    for (int64_t i = 0; i < N; i++) db[i] += dout[i];
  }
}

}  // namespace switchlora::cpu
