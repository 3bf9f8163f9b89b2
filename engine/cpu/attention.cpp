// Causal multi-head self-attention with a fused softmax, flash-attention
// style: one softmax row at a time lives in a small per-thread scratch, the
// forward saves only the row's log-sum-exp, and the backward recomputes the
// probabilities from q, k and lse. No (T, T) matrix outlives a call.
#include <cmath>
#include <vector>

#include "engine/cpu/vexp.h"
#include "engine/ops.h"

namespace switchlora::cpu {

static inline float dot(const float* a, const float* b, int n) {
  float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
  for (int i = 0; i < n; i++) acc += a[i] * b[i];
  return acc;
}

// y += a * x   (n elements)
static inline void axpy(float* y, float a, const float* x, int n) {
#pragma omp simd
  for (int i = 0; i < n; i++) y[i] += a * x[i];
}

// q, k, v, out: (B, T, NH, HS)   lse: (B, NH, T)
//   p[s] = softmax_s(q[t].k[s] / sqrt(HS)) over s <= t;   out[t] = sum_s p[s] v[s]
void attention_forward(float* out, float* lse, const float* q, const float* k,
                       const float* v, int B, int T, int NH, int HS) {
  const int64_t C = (int64_t)NH * HS;
  const float scale = 1.0f / std::sqrt((float)HS);
#pragma omp parallel
  {
    std::vector<float> p(T);  // (T) one row of scores, then probabilities
    // Row t costs t + 1 dot products: small dynamic chunks keep threads even.
#pragma omp for collapse(3) schedule(dynamic, 8)
    for (int b = 0; b < B; b++)
      for (int h = 0; h < NH; h++)
        for (int t = 0; t < T; t++) {
          const float* qt = q + (b * T + t) * C + h * HS;
          float mx = -INFINITY;
          for (int s = 0; s <= t; s++) {
            p[s] = scale * dot(qt, k + (b * T + s) * C + h * HS, HS);
            mx = std::fmax(mx, p[s]);
          }
          float sum = 0.0f;  // t + 1 terms in (0, 1], one of them exactly 1
#pragma omp simd reduction(+ : sum)
          for (int s = 0; s <= t; s++) {
            p[s] = vexp(p[s] - mx);
            sum += p[s];
          }
          float* ot = out + (b * T + t) * C + h * HS;
          for (int i = 0; i < HS; i++) ot[i] = 0.0f;
          float inv = 1.0f / sum;
          for (int s = 0; s <= t; s++) axpy(ot, p[s] * inv, v + (b * T + s) * C + h * HS, HS);
          lse[((int64_t)b * NH + h) * T + t] = mx + std::log(sum);
        }
  }
}

// Per row t, with P recomputed as p[s] = exp(q[t].k[s] * scale - lse[t]):
//   dv[s] += p[s] dout[t]
//   dp[s]  = dout[t] . v[s]
//   ds[s]  = p[s] (dp[s] - D),   D = dout[t] . out[t] = sum_s p[s] dp[s]
//   dq[t] += scale * sum_s ds[s] k[s];   dk[s] += scale * ds[s] q[t]
// dk and dv of a key collect terms from every later row, so the work is split
// over (b, h) pairs: each thread owns whole heads and accumulates without races.
void attention_backward(float* dq, float* dk, float* dv, const float* dout,
                        const float* q, const float* k, const float* v,
                        const float* out, const float* lse, int B, int T, int NH, int HS) {
  if (!dq && !dk && !dv) return;
  const int64_t C = (int64_t)NH * HS;
  const float scale = 1.0f / std::sqrt((float)HS);
#pragma omp parallel
  {
    std::vector<float> p(T), ds(T);  // (T) each: one row of P and of dS
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < B; b++)
      for (int h = 0; h < NH; h++)
        for (int t = 0; t < T; t++) {
          int64_t row_t = (b * T + t) * C + h * HS;
          const float* qt = q + row_t;
          const float* dout_t = dout + row_t;
          float l = lse[((int64_t)b * NH + h) * T + t];
          float D = dot(dout_t, out + row_t, HS);
          for (int s = 0; s <= t; s++) {
            int64_t row_s = (b * T + s) * C + h * HS;
            p[s] = vexp(scale * dot(qt, k + row_s, HS) - l);
            ds[s] = p[s] * (dot(dout_t, v + row_s, HS) - D);
          }
          for (int s = 0; s <= t; s++) {
            int64_t row_s = (b * T + s) * C + h * HS;
            if (dv) axpy(dv + row_s, p[s], dout_t, HS);
            if (dk) axpy(dk + row_s, scale * ds[s], qt, HS);
            if (dq) axpy(dq + row_t, scale * ds[s], k + row_s, HS);
          }
        }
  }
}

}  // namespace switchlora::cpu
