// SwiGLU gating of the LLaMA MLP (Shazeer 2020): out = silu(gate) * up,
// silu(x) = x * sigmoid(x). Elementwise over N values.
#include "engine/cuda/common.cuh"
#include "engine/cuda/ops.h"

namespace switchlora::cuda {

// expf, not __expf: the fast intrinsic is off by up to ~2^-21 relative,
// more than the parity tests allow.
__device__ inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__global__ void swiglu_forward_kernel(float* out, const float* gate, const float* up, int64_t N) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < N) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

// d silu(x)/dx = sig(x) (1 + x (1 - sig(x)))
//   dgate += dout * up * sig (1 + gate (1 - sig));   dup += dout * silu(gate)
// A null gradient is skipped per thread: the branch is uniform over the grid.
__global__ void swiglu_backward_kernel(float* dgate, float* dup, const float* dout,
                                       const float* gate, const float* up, int64_t N) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= N) return;
  float g = gate[i], sig = sigmoid(g);
  if (dgate) dgate[i] += dout[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
  if (dup) dup[i] += dout[i] * g * sig;
}

void swiglu_forward(float* out, const float* gate, const float* up, int64_t N) {
  swiglu_forward_kernel<<<blocks_for(N), kBlock>>>(out, gate, up, N);
  CUDA_CHECK_LAUNCH();
}

void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                     const float* up, int64_t N) {
  if (!dgate && !dup) return;
  swiglu_backward_kernel<<<blocks_for(N), kBlock>>>(dgate, dup, dout, gate, up, N);
  CUDA_CHECK_LAUNCH();
}

}  // namespace switchlora::cuda
