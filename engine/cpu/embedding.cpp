// Token embedding lookup: out[n, :] = wte[tokens[n], :].
#include <algorithm>
#include <cstring>
#include <string>

#include "engine/error.h"
#include "engine/ops.h"

namespace switchlora::cpu {

// The op is not told V, so only the lower bound of a token id can be checked
// here; the data loader guarantees ids < V. Checked before the parallel loops
// because an exception must not escape an OpenMP region.
static void check_tokens(const int32_t* tokens, int N, const char* op) {
  for (int n = 0; n < N; n++)
    if (tokens[n] < 0)
      throw Error(std::string(op) + ": tokens[" + std::to_string(n) + "] = " +
                  std::to_string(tokens[n]) + " is negative");
}

// out (N, C) = wte[tokens[n], :]
void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N, int C) {
  check_tokens(tokens, N, "embedding_forward");
#pragma omp parallel for
  for (int n = 0; n < N; n++)
    std::memcpy(out + (int64_t)n * C, wte + (int64_t)tokens[n] * C, sizeof(float) * C);
}

// dwte[tokens[n], :] += dout[n, :]
// A token may occur in many rows, so splitting over rows would race on its
// gradient row. Each thread instead owns a block of channels and walks all
// rows: no atomics, and the sum order (and so the result) is deterministic.
void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C) {
  if (!dwte) return;
  check_tokens(tokens, N, "embedding_backward");
  constexpr int kBlock = 64;  // channels per task: 256 bytes, whole cache lines
  int nblocks = (C + kBlock - 1) / kBlock;
#pragma omp parallel for
  for (int blk = 0; blk < nblocks; blk++) {
    int c0 = blk * kBlock, c1 = std::min(C, c0 + kBlock);
    for (int n = 0; n < N; n++) {
      float* dst = dwte + (int64_t)tokens[n] * C;
      const float* src = dout + (int64_t)n * C;
#pragma omp simd
      for (int c = c0; c < c1; c++) dst[c] += src[c];
    }
  }
}

}  // namespace switchlora::cpu
