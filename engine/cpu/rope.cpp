// Rotary position embedding (Su et al. 2021) in HF LLaMA's rotate_half
// convention: element i of a head pairs with element i + HS/2, and the pair
// at position t is rotated by angle t * theta^(-2i/HS).
#include <cmath>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/ops.h"

namespace switchlora::cpu {

// cos and sin of every (t, i) angle, (T, HS/2) each. The angles are computed
// in double: t * freq reaches thousands of radians, where a float angle would
// already be off by ~1e-4 before the cosine.
struct RopeTable {
  int T = 0, HS = 0;
  float theta = 0.0f;
  std::vector<float> cosv, sinv;
};

// The table for (T, HS, theta), computed when they change: every layer's q
// and k, forward and backward, use the same one, and computing its T HS
// double cosines and sines each call took as long as the rotation itself.
// One per thread, so that concurrent callers never share it.
static const RopeTable& rope_table(int T, int HS, float theta, const char* op) {
  if (HS % 2 != 0)
    throw Error(std::string(op) + ": head size HS = " + std::to_string(HS) + " must be even");
  if (!(theta > 0.0f))
    throw Error(std::string(op) + ": rope theta = " + std::to_string(theta) + " must be > 0");
  thread_local RopeTable table;
  if (table.T == T && table.HS == HS && table.theta == theta) return table;
  int half = HS / 2;
  table.T = 0;  // until it is whole
  table.cosv.resize((size_t)T * half);
  table.sinv.resize((size_t)T * half);
  std::vector<double> freq(half);
  for (int i = 0; i < half; i++) freq[i] = std::pow((double)theta, -2.0 * i / HS);
  // Pointers, not `table`: in the parallel loop that name would be each
  // worker thread's own (empty) table.
  float *cosv = table.cosv.data(), *sinv = table.sinv.data();
#pragma omp parallel for
  for (int t = 0; t < T; t++)
    for (int i = 0; i < half; i++) {
      cosv[(size_t)t * half + i] = (float)std::cos(t * freq[i]);
      sinv[(size_t)t * half + i] = (float)std::sin(t * freq[i]);
    }
  table.T = T, table.HS = HS, table.theta = theta;
  return table;
}

// out = R(sign * angle) x over (B, T, NH, HS), written or accumulated:
//   r[i]        = x[i] cos - sign x[i + HS/2] sin
//   r[i + HS/2] = x[i + HS/2] cos + sign x[i] sin
template <bool kAccumulate>
static void rotate(float* out, const float* x, int B, int T, int NH, int HS, float theta, float sign,
                   const char* op) {
  const RopeTable& table = rope_table(T, HS, theta, op);
  const std::vector<float>&cosv = table.cosv, &sinv = table.sinv;
  int half = HS / 2;
#pragma omp parallel for collapse(2)
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      const float* c = cosv.data() + (size_t)t * half;
      const float* s = sinv.data() + (size_t)t * half;
      for (int h = 0; h < NH; h++) {
        int64_t off = (((int64_t)b * T + t) * NH + h) * HS;
        const float* xh = x + off;
        float* oh = out + off;
#pragma omp simd
        for (int i = 0; i < half; i++) {
          float x1 = xh[i], x2 = xh[i + half], si = sign * s[i];
          float r1 = x1 * c[i] - x2 * si, r2 = x2 * c[i] + x1 * si;
          if constexpr (kAccumulate) {
            oh[i] += r1;
            oh[i + half] += r2;
          } else {
            oh[i] = r1;
            oh[i + half] = r2;
          }
        }
      }
    }
}

void rope_forward(float* out, const float* x, int B, int T, int NH, int HS, float theta) {
  rotate<false>(out, x, B, T, NH, HS, theta, +1.0f, "rope_forward");
}

// The rotation is orthogonal, so its transpose is the rotation by -angle:
//   dx += R(-angle) dout
void rope_backward(float* dx, const float* dout, int B, int T, int NH, int HS, float theta) {
  if (!dx) return;
  rotate<true>(dx, dout, B, T, NH, HS, theta, -1.0f, "rope_backward");
}

}  // namespace switchlora::cpu
