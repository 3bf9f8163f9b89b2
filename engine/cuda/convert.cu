// fp32 <-> bf16 conversion for the bf16 GEMM path: parameters and
// activations stay fp32 masters, bf16 copies feed the tensor cores.
#include "engine/cuda/common.cuh"
#include "engine/cuda/ops.h"

namespace switchlora::cuda {

__global__ void float_to_bf16_kernel(__nv_bfloat16* out, const float* in, int64_t n) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = __float2bfloat16(in[i]);  // round to nearest even
}

__global__ void bf16_to_float_kernel(float* out, const __nv_bfloat16* in, int64_t n) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = __bfloat162float(in[i]);  // exact: bf16 is a truncated fp32
}

void float_to_bf16(__nv_bfloat16* out, const float* in, int64_t n) {
  float_to_bf16_kernel<<<blocks_for(n), kBlock>>>(out, in, n);
  CUDA_CHECK_LAUNCH();
}

void bf16_to_float(float* out, const __nv_bfloat16* in, int64_t n) {
  bf16_to_float_kernel<<<blocks_for(n), kBlock>>>(out, in, n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace switchlora::cuda
