// Residual connection: out = a + b. Its backward passes dout to both inputs.
#include "engine/cuda/common.cuh"
#include "engine/cuda/ops.h"

namespace switchlora::cuda {

// out may alias a or b (no __restrict__): each thread reads its element
// before writing it.
__global__ void residual_forward_kernel(float* out, const float* a, const float* b, int64_t N) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < N) out[i] = a[i] + b[i];
}

// d += dout
__global__ void accumulate_kernel(float* d, const float* dout, int64_t N) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < N) d[i] += dout[i];
}

void residual_forward(float* out, const float* a, const float* b, int64_t N) {
  residual_forward_kernel<<<blocks_for(N), kBlock>>>(out, a, b, N);
  CUDA_CHECK_LAUNCH();
}

// da += dout, db += dout
void residual_backward(float* da, float* db, const float* dout, int64_t N) {
  if (da) {
    accumulate_kernel<<<blocks_for(N), kBlock>>>(da, dout, N);
    CUDA_CHECK_LAUNCH();
  }
  if (db) {
    accumulate_kernel<<<blocks_for(N), kBlock>>>(db, dout, N);
    CUDA_CHECK_LAUNCH();
  }
}

}  // namespace switchlora::cuda
