// The SwitchLoRA W corrections (model/switchlora.cpp): switching one row of
// A or one column of B changes B A by a rank-1 matrix, and W takes the
// opposite change so that W + s B A, the layer's output, stays the same.
// Copying the vectors themselves (candidate in, old vector back to its slot)
// is plain memory movement left to the caller.
#include "engine/cuda/common.cuh"
#include "engine/cuda/ops.h"

namespace switchlora::cuda {

// One thread per element of W (out, in); B (out, r), A (r, in), c (in):
//   W[o, j] += s * B[o, slot] * (A[slot, j] - c[j])
__global__ void switch_A_update_kernel(float* W, const float* B, const float* A, const float* c,
                                       float s, int slot, int out, int in, int r) {
  int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (int64_t)out * in) return;
  int o = (int)(e / in), j = (int)(e % in);
  const float sb = s * B[(int64_t)o * r + slot];
  W[e] += sb * (A[(int64_t)slot * in + j] - c[j]);
}

// c (out):   W[o, j] += s * (B[o, slot] - c[o]) * A[slot, j]
__global__ void switch_B_update_kernel(float* W, const float* B, const float* A, const float* c,
                                       float s, int slot, int out, int in, int r) {
  int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (int64_t)out * in) return;
  int o = (int)(e / in), j = (int)(e % in);
  const float sd = s * (B[(int64_t)o * r + slot] - c[o]);
  W[e] += sd * A[(int64_t)slot * in + j];
}

void switch_A_update(float* W, const float* B, const float* A, const float* c, float s,
                     int slot, int out, int in, int r) {
  SL_CHECK(slot >= 0 && slot < r, "switch_A_update: slot " + std::to_string(slot) +
                                      " outside rank " + std::to_string(r));
  switch_A_update_kernel<<<blocks_for((int64_t)out * in), kBlock>>>(W, B, A, c, s, slot, out, in, r);
  CUDA_CHECK_LAUNCH();
}

void switch_B_update(float* W, const float* B, const float* A, const float* c, float s,
                     int slot, int out, int in, int r) {
  SL_CHECK(slot >= 0 && slot < r, "switch_B_update: slot " + std::to_string(slot) +
                                      " outside rank " + std::to_string(r));
  switch_B_update_kernel<<<blocks_for((int64_t)out * in), kBlock>>>(W, B, A, c, s, slot, out, in, r);
  CUDA_CHECK_LAUNCH();
}

}  // namespace switchlora::cuda
