// Token embedding lookup: out[n, :] = wte[tokens[n], :].
#include <cmath>

#include <cub/device/device_radix_sort.cuh>

#include "engine/cuda/common.cuh"
#include "engine/cuda/ops.h"

namespace switchlora::cuda {

// One thread per output element. The op is not told V, so as on the CPU
// only a negative id can be caught; a kernel cannot throw, so that row
// becomes NaN, which the loss then shows.
__global__ void embedding_forward_kernel(float* out, const int32_t* tokens, const float* wte,
                                         int N, int C) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (int64_t)N * C) return;
  int n = (int)(i / C), c = (int)(i % C);
  int32_t tok = tokens[n];
  out[i] = tok >= 0 ? wte[(int64_t)tok * C + c] : NAN;
}

// dwte[tokens[n], :] += dout[n, :], deterministically: the rows are sorted
// by token (a stable radix sort, so rows of one token stay in order), and
// then one thread per (token, channel) sums that token's rows in row order
// and adds the sum once. No atomics: the same batch gives the same bits on
// every run, which is what lets a GPU run resume exactly. llm.c's
// encoder_backward makes the same trade.
// sorted_tok, sorted_row: (N), the tokens in ascending order and the row each came from.
__global__ void embedding_backward_sorted_kernel(float* dwte, const float* dout,
                                                 const int32_t* sorted_tok,
                                                 const int32_t* sorted_row, int N, int C) {
  int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (int64_t)N * C) return;
  int i = (int)(e / C), c = (int)(e % C);
  int32_t tok = sorted_tok[i];
  if (tok < 0 || (i > 0 && sorted_tok[i - 1] == tok)) return;  // not the first row of its token
  float sum = 0.0f;
  for (int j = i; j < N && sorted_tok[j] == tok; j++) sum += dout[(int64_t)sorted_row[j] * C + c];
  dwte[(int64_t)tok * C + c] += sum;
}

__global__ void iota_kernel(int32_t* out, int N) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < N) out[i] = i;
}

void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N, int C) {
  embedding_forward_kernel<<<blocks_for((int64_t)N * C), kBlock>>>(out, tokens, wte, N, C);
  CUDA_CHECK_LAUNCH();
}

// The sort's values, keys and temp space are scratch of the workspace.
void embedding_backward(Workspace& ws, float* dwte, const float* dout, const int32_t* tokens,
                        int N, int C) {
  if (!dwte || N == 0) return;
  const size_t n_bytes = (size_t)N * sizeof(int32_t);
  int32_t* rows = (int32_t*)ws.sort_rows.get(2 * n_bytes);  // rows, then sorted rows
  int32_t* keys = (int32_t*)ws.sort_keys.get(n_bytes);      // sorted tokens
  iota_kernel<<<blocks_for(N), kBlock>>>(rows, N);
  CUDA_CHECK_LAUNCH();
  size_t need = 0;
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, need, tokens, keys, rows, rows + N, N));
  void* t = ws.sort_temp.get(need);
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(t, need, tokens, keys, rows, rows + N, N));
  embedding_backward_sorted_kernel<<<blocks_for((int64_t)N * C), kBlock>>>(dwte, dout, keys, rows + N,
                                                                           N, C);
  CUDA_CHECK_LAUNCH();
}

}  // namespace switchlora::cuda
