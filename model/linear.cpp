#include "model/linear.h"

#include <algorithm>

namespace switchlora {

bool lora_merge_pays(int N, int in, int out, int r, float dropout) {
  // Merging costs about as much as one rank-r update of W's own size, and
  // saves one of N rows: require N to be at least twice either side of W.
  return r > 0 && dropout == 0 && N >= 2 * std::max(in, out);
}

bool lora_merge_pays(const Linear& l, int N, const LoraDropout& d) { return lora_merge_pays(N, l.in, l.out, l.r, d.p); }

// w (out, in) = W + s B A
static void merge_weight(Backend& be, const Linear& l, float* w) {
  be.copy(w, l.W->data, (size_t)l.out * l.in * sizeof(float));
  be.matmul(w, l.B->data, l.A->data, l.out, l.in, l.r, false, false, l.s, 1.0f);
}

void linear_layer_forward(Backend& be, const Linear& l, float* y, float* xa, const float* x, int N,
                          const LoraDropout& d, float* w_merged) {
  if (w_merged && lora_merge_pays(l, N, d)) {
    merge_weight(be, l, w_merged);
    be.linear_forward(y, x, w_merged, N, l.in, l.out);  // y = x (W + s B A)^T
    be.linear_forward(xa, x, l.A->data, N, l.in, l.r);  // xa = x A^T, for dB
    return;
  }
  be.linear_forward(y, x, l.W->data, N, l.in, l.out);  // y = x W^T
  if (l.r == 0) return;
  if (d.p > 0) {
    be.dropout_forward(d.x, x, (int64_t)N * l.in, d.p, d.seed, d.stream);
    x = d.x;                                           // the adapter sees drop(x)
  }
  be.linear_forward(xa, x, l.A->data, N, l.in, l.r);   // xa = x A^T        (N, r)
  // y += s xa B^T: one GEMM accumulating into y
  be.matmul(y, xa, l.B->data, N, l.out, l.r, false, true, l.s, 1.0f);
}

void linear_layer_backward(Backend& be, const Linear& l, float* dx, float* dxa, const float* dy,
                           const float* x, const float* xa, int N, const LoraDropout& d, float* w_merged,
                           float dx_beta) {
  const bool merged = w_merged && lora_merge_pays(l, N, d);
  if (merged && dx) merge_weight(be, l, w_merged);  // the forward's W' is long overwritten
  // dx = dx_beta dx + dy W (or dy W', which holds the adapter's share too);
  // whatever follows adds to it. The frozen W gets no gradient: skipping
  // dW = dy^T x is where LoRA saves a third of the backward GEMM work.
  be.linear_backward(dx, l.W->grad, dy, x, merged ? w_merged : l.W->data, N, l.in, l.out, dx_beta);
  if (l.r == 0) return;
  // dxa = s dy B                                                     (N, r)
  be.matmul(dxa, dy, l.B->data, N, l.r, l.out, false, false, l.s, 0.0f);
  // dB += s dy^T xa                                                  (out, r)
  if (l.B->grad) be.matmul(l.B->grad, dy, xa, l.out, l.r, N, true, false, l.s, 1.0f);
  if (d.p == 0) {
    // dA += dxa^T x, and unless merged dx += dxa A                   (r, in), (N, in)
    be.linear_backward(merged ? nullptr : dx, l.A->grad, dxa, x, l.A->data, N, l.in, l.r);
    return;
  }
  // With dropout: dA += dxa^T drop(x) (drop(x) recomputed from its key), and
  // dx += keep * (dxa A) / (1 - p).
  const int64_t n = (int64_t)N * l.in;
  be.dropout_forward(d.x, x, n, d.p, d.seed, d.stream);
  be.linear_backward(nullptr, l.A->grad, dxa, d.x, l.A->data, N, l.in, l.r);
  if (!dx) return;
  be.matmul(d.dx, dxa, l.A->data, N, l.in, l.r, false, false, 1.0f, 0.0f);
  be.dropout_backward(dx, d.dx, n, d.p, d.seed, d.stream);
}

}  // namespace switchlora
