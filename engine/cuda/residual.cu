// Residual connection: out = a + b. It has no backward op: the gradient
// passes to both inputs unchanged, so the model hands dout on as it is.
#include "engine/cuda/common.cuh"
#include "engine/cuda/ops.h"

namespace switchlora::cuda {

// out may alias a or b (no __restrict__): each thread reads its element
// before writing it.
__global__ void residual_forward_kernel(float* out, const float* a, const float* b, int64_t N) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < N) out[i] = a[i] + b[i];
}

void residual_forward(float* out, const float* a, const float* b, int64_t N) {
  residual_forward_kernel<<<blocks_for(N), kBlock>>>(out, a, b, N);
  CUDA_CHECK_LAUNCH();
}

}  // namespace switchlora::cuda
