// Fused log-softmax + cross-entropy over the vocabulary. The (N, V)
// probabilities are never stored: the forward keeps each row's log-sum-exp
// and the backward recomputes softmax = exp(logit - lse) on the fly, writing
// the gradient over the logits themselves when the model asks (llm.c's
// fused classifier does the same): no (N, V) gradient buffer, no zeroing of
// one, one read and one write of the logits instead of two reads and two
// writes of each.
#include <cmath>
#include <string>

#include "engine/cpu/vexp.h"
#include "engine/error.h"
#include "engine/ops.h"

namespace switchlora::cpu {

// Checked before the parallel loops: an exception must not escape an OpenMP region.
static void check_targets(const int32_t* targets, int N, int V, const char* op) {
  for (int n = 0; n < N; n++)
    if (targets[n] < 0 || targets[n] >= V)
      throw Error(std::string(op) + ": targets[" + std::to_string(n) + "] = " +
                  std::to_string(targets[n]) + " is outside the vocabulary [0, " +
                  std::to_string(V) + ")");
}

// logits: (N, V)   targets, losses, lse: (N)
//   losses[n] = logsumexp(logits[n, :]) - logits[n, targets[n]]
float cross_entropy_forward(float* losses, float* lse, const float* logits,
                            const int32_t* targets, int N, int V) {
  check_targets(targets, N, V, "cross_entropy_forward");
  double total = 0.0;
#pragma omp parallel for reduction(+ : total)
  for (int n = 0; n < N; n++) {
    const float* row = logits + (int64_t)n * V;
    float mx = -INFINITY;
    // A plain comparison, not std::fmax, whose NaN rules keep it scalar (10x
    // slower). A NaN logit is skipped here and still makes the loss NaN below.
#pragma omp simd reduction(max : mx)
    for (int v = 0; v < V; v++) mx = row[v] > mx ? row[v] : mx;
    // V = 32100 terms: summed in double so the loss is good to float precision.
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int v = 0; v < V; v++) sum += vexp(row[v] - mx);
    lse[n] = mx + (float)std::log(sum);
    losses[n] = lse[n] - row[targets[n]];
    total += losses[n];
  }
  return N > 0 ? (float)(total / N) : 0.0f;
}

// dlogits[n, :] = scale * (softmax(logits[n, :]) - onehot(targets[n]))
// Overwrites (the one backward op that does, see Backend); dlogits may be
// logits itself: each element is read once, then written.
void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                            const int32_t* targets, float scale, int N, int V) {
  if (!dlogits) return;
  check_targets(targets, N, V, "cross_entropy_backward");
#pragma omp parallel for
  for (int n = 0; n < N; n++) {
    const float* row = logits + (int64_t)n * V;
    float* drow = dlogits + (int64_t)n * V;
    float l = lse[n];
#pragma omp simd
    for (int v = 0; v < V; v++) drow[v] = scale * vexp(row[v] - l);
    drow[targets[n]] -= scale;
  }
}

}  // namespace switchlora::cpu
