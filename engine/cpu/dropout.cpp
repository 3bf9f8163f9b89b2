// Dropout with a counter-based mask (engine/backend.h): element i is kept
// when uniform01(seed, stream, i) >= p, and scaled by 1 / (1 - p). The mask
// is a pure function of (seed, stream, i): forward and backward, CPU and GPU,
// every rank and a resumed run all draw the same one.
#include "engine/ops.h"
#include "engine/rng.h"

namespace switchlora::cpu {

void dropout_forward(float* out, const float* x, int64_t N, float p, uint64_t seed, uint64_t stream) {
  const float scale = 1.0f / (1.0f - p);
#pragma omp parallel for
  for (int64_t i = 0; i < N; i++) out[i] = uniform01(seed, stream, (uint64_t)i) >= p ? x[i] * scale : 0.0f;
}

void dropout_backward(float* dx, const float* dout, int64_t N, float p, uint64_t seed, uint64_t stream) {
  const float scale = 1.0f / (1.0f - p);
#pragma omp parallel for
  for (int64_t i = 0; i < N; i++)
    if (uniform01(seed, stream, (uint64_t)i) >= p) dx[i] += dout[i] * scale;
}

}  // namespace switchlora::cpu
