// SwiGLU gating of the LLaMA MLP (Shazeer 2020): out = silu(gate) * up,
// silu(x) = x * sigmoid(x). Elementwise over N values.
#include "engine/cpu/vexp.h"
#include "engine/ops.h"

namespace switchlora::cpu {

static inline float sigmoid(float x) { return 1.0f / (1.0f + vexp(-x)); }

void swiglu_forward(float* out, const float* gate, const float* up, int64_t N) {
#pragma omp parallel for simd
  for (int64_t i = 0; i < N; i++) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

// d silu(x)/dx = sig(x) + x sig(x) (1 - sig(x)) = sig(x) (1 + x (1 - sig(x)))
//   dgate += dout * up * sig (1 + gate (1 - sig));   dup += dout * silu(gate)
// The model asks for both: one pass, one sigmoid per element, each input
// read once. Otherwise a loop per gradient, rather than one with
// `if (dgate)` inside: a branch around float math keeps GCC from
// vectorising the loop.
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                     const float* up, int64_t N) {
  if (dgate && dup) {
#pragma omp parallel for simd
    for (int64_t i = 0; i < N; i++) {
      float g = gate[i], sig = sigmoid(g), d = dout[i];
      dgate[i] += d * up[i] * sig * (1.0f + g * (1.0f - sig));
      dup[i] += d * g * sig;
    }
    return;
  }
  if (dgate) {
#pragma omp parallel for simd
    for (int64_t i = 0; i < N; i++) {
      float g = gate[i], sig = sigmoid(g);
      dgate[i] += dout[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
    }
  }
  if (dup) {
#pragma omp parallel for simd
    for (int64_t i = 0; i < N; i++) dup[i] += dout[i] * gate[i] * sigmoid(gate[i]);
  }
}

}  // namespace switchlora::cpu
