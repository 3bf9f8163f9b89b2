#include "model/linear.h"


namespace switchlora {

void linear_layer_forward(Backend& be, const Linear& l, float* y, float* xa, const float* x, int N,
                          const LoraDropout& d) {
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
                           const float* x, const float* xa, int N, const LoraDropout& d) {
  // The frozen W gets no gradient: skipping dW = dy^T x is where LoRA saves
  // a third of the backward GEMM work.
  be.linear_backward(dx, l.W->grad, dy, x, l.W->data, N, l.in, l.out);
  if (l.r == 0) return;
  // dxa = s dy B                                                     (N, r)
  be.matmul(dxa, dy, l.B->data, N, l.r, l.out, false, false, l.s, 0.0f);
  // dB += s dy^T xa                                                  (out, r)
  if (l.B->grad) be.matmul(l.B->grad, dy, xa, l.out, l.r, N, true, false, l.s, 1.0f);
  if (d.p == 0) {
    // dA += dxa^T x, dx += dxa A                                     (r, in), (N, in)
    be.linear_backward(dx, l.A->grad, dxa, x, l.A->data, N, l.in, l.r);
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
