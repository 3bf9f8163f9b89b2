// Rotary position embedding (Su et al. 2021) in HF LLaMA's rotate_half
// convention: element i of a head pairs with element i + HS/2, and the pair
// at position t is rotated by angle t * theta^(-2i/HS).
#include <string>

#include "engine/cuda/common.cuh"
#include "engine/cuda/ops.h"

namespace switchlora::cuda {

// cos and sin of the angle of pair i at position t. In double, as the CPU's
// table is: t * freq reaches thousands of radians, where a float angle would
// already be off by ~1e-4 before the cosine. Recomputed per element rather
// than tabled: the op is memory-bound either way.
__device__ inline void rope_angle(float* c, float* s, int t, int i, int HS, float theta) {
  double freq = pow((double)theta, -2.0 * i / HS);
  double cd, sd;
  sincos(t * freq, &sd, &cd);
  *c = (float)cd;
  *s = (float)sd;
}

// One thread per pair (b, t, h, i), i < HS/2.   x, out: (B, T, NH, HS)
//   out[i]        = x[i] cos - x[i + HS/2] sin
//   out[i + HS/2] = x[i + HS/2] cos + x[i] sin
__global__ void rope_forward_kernel(float* out, const float* x, int B, int T, int NH, int HS,
                                    float theta) {
  const int half = HS / 2;
  int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= (int64_t)B * T * NH * half) return;
  int i = (int)(p % half);
  int64_t row = p / half;  // (b, t, h) flattened
  int t = (int)(row / NH % T);
  float c, s;
  rope_angle(&c, &s, t, i, HS, theta);
  int64_t off = row * HS + i;
  float x1 = x[off], x2 = x[off + half];
  out[off] = x1 * c - x2 * s;
  out[off + half] = x2 * c + x1 * s;
}

// The rotation is orthogonal, so its transpose is the rotation by -angle:
//   dx[i]        += dout[i] cos + dout[i + HS/2] sin
//   dx[i + HS/2] += dout[i + HS/2] cos - dout[i] sin
__global__ void rope_backward_kernel(float* dx, const float* dout, int B, int T, int NH, int HS,
                                     float theta) {
  const int half = HS / 2;
  int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= (int64_t)B * T * NH * half) return;
  int i = (int)(p % half);
  int64_t row = p / half;
  int t = (int)(row / NH % T);
  float c, s;
  rope_angle(&c, &s, t, i, HS, theta);
  int64_t off = row * HS + i;
  float d1 = dout[off], d2 = dout[off + half];
  dx[off] += d1 * c + d2 * s;
  dx[off + half] += d2 * c - d1 * s;
}

static void check_rope(int HS, float theta, const char* op) {
  if (HS % 2 != 0)
    throw Error(std::string(op) + ": head size HS = " + std::to_string(HS) + " must be even");
  if (!(theta > 0.0f))
    throw Error(std::string(op) + ": rope theta = " + std::to_string(theta) + " must be > 0");
}

void rope_forward(float* out, const float* x, int B, int T, int NH, int HS, float theta) {
  check_rope(HS, theta, "rope_forward");
  int64_t pairs = (int64_t)B * T * NH * (HS / 2);
  rope_forward_kernel<<<blocks_for(pairs), kBlock>>>(out, x, B, T, NH, HS, theta);
  CUDA_CHECK_LAUNCH();
}

void rope_backward(float* dx, const float* dout, int B, int T, int NH, int HS, float theta) {
  if (!dx) return;
  check_rope(HS, theta, "rope_backward");
  int64_t pairs = (int64_t)B * T * NH * (HS / 2);
  rope_backward_kernel<<<blocks_for(pairs), kBlock>>>(dx, dout, B, T, NH, HS, theta);
  CUDA_CHECK_LAUNCH();
}

}  // namespace switchlora::cuda
