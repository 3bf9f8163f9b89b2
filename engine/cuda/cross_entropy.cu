// Fused log-softmax + cross-entropy over the vocabulary, one block per row.
// The (N, V) probabilities are never stored: the forward keeps each row's
// log-sum-exp and the backward recomputes softmax = exp(logit - lse).
#include <cmath>

#include "engine/cuda/common.cuh"
#include "engine/cuda/ops.h"

namespace switchlora::cuda {

// logits: (N, V)   targets, losses, lse: (N)
//   losses[n] = logsumexp(logits[n, :]) - logits[n, targets[n]]
// The exponentials are summed in double as on the CPU (V = 32100 terms). A
// target outside [0, V) cannot throw from a kernel: its loss becomes NaN.
__global__ void cross_entropy_forward_kernel(float* losses, float* lse, const float* logits,
                                             const int32_t* targets, int V) {
  __shared__ float fscratch[kWarp];
  __shared__ double dscratch[kWarp];
  const float* row = logits + (int64_t)blockIdx.x * V;
  float mx = -INFINITY;
  for (int v = threadIdx.x; v < V; v += blockDim.x) mx = fmaxf(mx, row[v]);
  mx = block_max(mx, fscratch);
  double sum = 0.0;
  for (int v = threadIdx.x; v < V; v += blockDim.x) sum += expf(row[v] - mx);
  sum = block_sum(sum, dscratch);
  if (threadIdx.x == 0) {
    float l = mx + (float)log(sum);
    int32_t t = targets[blockIdx.x];
    lse[blockIdx.x] = l;
    losses[blockIdx.x] = (t >= 0 && t < V) ? l - row[t] : NAN;
  }
}

// *loss_sum = sum of losses (N), by one block in a fixed order: the mean is
// the same on every run.
__global__ void loss_sum_kernel(double* loss_sum, const float* losses, int N) {
  __shared__ double scratch[kWarp];
  double acc = 0.0;
  for (int n = threadIdx.x; n < N; n += blockDim.x) acc += losses[n];
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) *loss_sum = acc;
}

// dlogits[n, :] = scale * (softmax(logits[n, :]) - onehot(targets[n]))
// (overwrites; dlogits may be logits itself: each thread reads an element
// before it writes it). One block per row; the target's element is
// corrected by the thread that owns it, so no element is written twice. A target outside [0, V) leaves
// only the softmax term (the forward has already made that loss NaN).
__global__ void cross_entropy_backward_kernel(float* dlogits, const float* logits,
                                              const float* lse, const int32_t* targets,
                                              float scale, int V) {
  const int64_t off = (int64_t)blockIdx.x * V;
  const float l = lse[blockIdx.x];
  const int32_t t = targets[blockIdx.x];
  for (int v = threadIdx.x; v < V; v += blockDim.x) {
    float d = scale * expf(logits[off + v] - l);
    dlogits[off + v] = v == t ? d - scale : d;
  }
}

// The sum of the losses is one double of the workspace, read back here.
float cross_entropy_forward(Workspace& ws, float* losses, float* lse, const float* logits,
                            const int32_t* targets, int N, int V) {
  if (N == 0) return 0.0f;
  cross_entropy_forward_kernel<<<N, kBlock>>>(losses, lse, logits, targets, V);
  CUDA_CHECK_LAUNCH();
  double* loss_sum = (double*)ws.loss_sum.get(sizeof(double));
  loss_sum_kernel<<<1, 1024>>>(loss_sum, losses, N);
  CUDA_CHECK_LAUNCH();
  double total = 0.0;
  // Synchronous on the default stream: waits for both kernels.
  CUDA_CHECK(cudaMemcpy(&total, loss_sum, sizeof(double), cudaMemcpyDeviceToHost));
  return (float)(total / N);
}

void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                            const int32_t* targets, float scale, int N, int V) {
  if (!dlogits || N == 0) return;
  cross_entropy_backward_kernel<<<N, kBlock>>>(dlogits, logits, lse, targets, scale, V);
  CUDA_CHECK_LAUNCH();
}

}  // namespace switchlora::cuda
