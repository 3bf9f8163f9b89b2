// Causal multi-head self-attention with a fused softmax, flash-attention
// style: the forward saves only each softmax row's log-sum-exp, and the
// backward recomputes the probabilities from q, k and lse. No (T, T) matrix
// outlives a call.
//
// Work is split over (b, h) pairs. A head is copied into contiguous (T, HS)
// blocks so the products can run as GEMMs, one head per thread
// (matmul_in_thread, on the calling thread); K and V are copied transposed,
// (HS, T), where Q K^T and dO V^T need them, so that those products multiply
// without a transposed B, which BLIS packs at about 2/3 of its rate.
// (Multiplying the heads in place, row stride C, with no copies at all,
// measured 4% slower.) Queries go in tiles of kTile rows, so the scores are
// a (kTile, T) scratch per thread. A tile's rows t0 .. t0+tq-1 see keys
// 0 .. t0+tq-1, so only the tile's own diagonal block computes masked
// entries.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "engine/cpu/vexp.h"
#include "engine/ops.h"

namespace switchlora::cpu {

constexpr int kTile = 64;

// dst (T, HS) = head h of batch b of src (B, T, NH, HS)
static void gather_head(float* dst, const float* src, int b, int h, int T, int NH, int HS) {
  for (int t = 0; t < T; t++)
    std::memcpy(dst + (int64_t)t * HS, src + (((int64_t)b * T + t) * NH + h) * HS, sizeof(float) * HS);
}

// dst (HS, T) = head h of batch b of src (B, T, NH, HS), transposed. In
// blocks of kBlock positions, so each write fills a run of dst's row: one
// position at a time writes HS rows T floats apart, and with T a multiple of
// 256 those all fall in a few sets of the L1 cache, which they thrash (this
// copy then took half of attention's own non-GEMM time).
static void gather_head_transposed(float* dst, const float* src, int b, int h, int T, int NH, int HS) {
  constexpr int kBlock = 16;
  const int64_t row = (int64_t)NH * HS;  // src's stride from one position to the next
  const float* head = src + ((int64_t)b * T * NH + h) * HS;
  for (int t0 = 0; t0 < T; t0 += kBlock) {
    const int nt = std::min(kBlock, T - t0);
    for (int i = 0; i < HS; i++) {
      float* d = dst + (int64_t)i * T + t0;
      const float* s = head + t0 * row + i;
      for (int t = 0; t < nt; t++) d[t] = s[t * row];
    }
  }
}

// head h of batch b of dst (B, T, NH, HS) = src (T, HS)
static void scatter_head(float* dst, const float* src, int b, int h, int T, int NH, int HS) {
  for (int t = 0; t < T; t++)
    std::memcpy(dst + (((int64_t)b * T + t) * NH + h) * HS, src + (int64_t)t * HS, sizeof(float) * HS);
}

// head h of batch b of dst (B, T, NH, HS) += src (T, HS)
static void scatter_add_head(float* dst, const float* src, int b, int h, int T, int NH, int HS) {
  for (int t = 0; t < T; t++) {
    float* d = dst + (((int64_t)b * T + t) * NH + h) * HS;
    const float* s = src + (int64_t)t * HS;
#pragma omp simd
    for (int i = 0; i < HS; i++) d[i] += s[i];
  }
}

// q, k, v, out: (B, T, NH, HS)   lse: (B, NH, T)
//   out[t] = sum_{s<=t} p[s] v[s],   p = softmax_s(q[t].k[s] / sqrt(HS))
void attention_forward(float* out, float* lse, const float* q, const float* k,
                       const float* v, int B, int T, int NH, int HS) {
  const float scale = 1.0f / std::sqrt((float)HS);
#pragma omp parallel
  {
    std::vector<float> qh((size_t)T * HS), kth(qh.size()), vh(qh.size()), oh(qh.size());  // kth: (HS, T)
    std::vector<float> S((size_t)kTile * T);  // (tq, ns) scores, then exp(score - max)
    std::vector<float> inv_sum(kTile);       // 1 / each row's sum of exp
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < B; b++)
      for (int h = 0; h < NH; h++) {
        gather_head(qh.data(), q, b, h, T, NH, HS);
        gather_head_transposed(kth.data(), k, b, h, T, NH, HS);
        gather_head(vh.data(), v, b, h, T, NH, HS);
        float* lse_bh = lse + ((int64_t)b * NH + h) * T;
        for (int t0 = 0; t0 < T; t0 += kTile) {
          int tq = std::min(kTile, T - t0), ns = t0 + tq;
          // S (tq, ns) = scale * Q[t0 : t0+tq] K^T[:, 0 : ns]
          matmul_in_thread(S.data(), qh.data() + (int64_t)t0 * HS, kth.data(), tq, ns, HS, false, false, scale,
                           0.0f, HS, T, ns);
          for (int r = 0; r < tq; r++) {
            int t = t0 + r;
            float* row = S.data() + (int64_t)r * ns;
            float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
            for (int s = 0; s <= t; s++) mx = row[s] > mx ? row[s] : mx;
            float sum = 0.0f;  // t + 1 terms in (0, 1], one of them exactly 1
#pragma omp simd reduction(+ : sum)
            for (int s = 0; s <= t; s++) {
              row[s] = vexp(row[s] - mx);
              sum += row[s];
            }
            for (int s = t + 1; s < ns; s++) row[s] = 0.0f;  // the causal mask
            inv_sum[r] = 1.0f / sum;
            lse_bh[t] = mx + std::log(sum);
          }
          // O[t0 : t0+tq] (tq, HS) = P (tq, ns) @ V[0 : ns], P = row / sum: the
          // division is done on O's HS columns, not on the row's ns scores.
          float* o_tile = oh.data() + (int64_t)t0 * HS;
          matmul_in_thread(o_tile, S.data(), vh.data(), tq, HS, ns, false, false, 1.0f, 0.0f, ns, HS, HS);
          for (int r = 0; r < tq; r++)
#pragma omp simd
            for (int i = 0; i < HS; i++) o_tile[(int64_t)r * HS + i] *= inv_sum[r];
        }
        scatter_head(out, oh.data(), b, h, T, NH, HS);
      }
  }
}

// Per query tile, with P recomputed as exp(scale * Q K^T - lse) (masked):
//   dV += P^T dO
//   dP  = dO V^T
//   dS  = P * (dP - D),   D[t] = dO[t] . O[t] = sum_s P[t, s] dP[t, s]
//   dQ += scale * dS K;   dK += scale * dS^T Q
// Each thread owns whole heads, so dK and dV accumulate without races.
void attention_backward(float* dq, float* dk, float* dv, const float* dout,
                        const float* q, const float* k, const float* v,
                        const float* out, const float* lse, int B, int T, int NH, int HS) {
  if (!dq && !dk && !dv) return;
  const float scale = 1.0f / std::sqrt((float)HS);
#pragma omp parallel
  {
    std::vector<float> qh((size_t)T * HS), kh(qh.size()), kth(qh.size()), vth(qh.size()), doh(qh.size());
    std::vector<float> dqh(qh.size()), dkh(qh.size()), dvh(qh.size()), D(T);  // kth, vth: (HS, T)
    std::vector<float> P((size_t)kTile * T), dS(P.size());  // (tq, ns) each
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < B; b++)
      for (int h = 0; h < NH; h++) {
        gather_head(qh.data(), q, b, h, T, NH, HS);
        gather_head(kh.data(), k, b, h, T, NH, HS);
        gather_head_transposed(kth.data(), k, b, h, T, NH, HS);
        gather_head_transposed(vth.data(), v, b, h, T, NH, HS);
        gather_head(doh.data(), dout, b, h, T, NH, HS);
        for (int t = 0; t < T; t++) {
          const float* ot = out + (((int64_t)b * T + t) * NH + h) * HS;
          const float* dot_row = doh.data() + (int64_t)t * HS;
          float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
          for (int i = 0; i < HS; i++) acc += dot_row[i] * ot[i];
          D[t] = acc;
        }
        std::fill(dqh.begin(), dqh.end(), 0.0f);
        std::fill(dkh.begin(), dkh.end(), 0.0f);
        std::fill(dvh.begin(), dvh.end(), 0.0f);
        const float* lse_bh = lse + ((int64_t)b * NH + h) * T;
        for (int t0 = 0; t0 < T; t0 += kTile) {
          int tq = std::min(kTile, T - t0), ns = t0 + tq;
          const float* q_tile = qh.data() + (int64_t)t0 * HS;
          const float* do_tile = doh.data() + (int64_t)t0 * HS;
          matmul_in_thread(P.data(), q_tile, kth.data(), tq, ns, HS, false, false, scale, 0.0f, HS, T, ns);
          for (int r = 0; r < tq; r++) {
            int t = t0 + r;
            float* row = P.data() + (int64_t)r * ns;
            float l = lse_bh[t];
#pragma omp simd
            for (int s = 0; s <= t; s++) row[s] = vexp(row[s] - l);
            for (int s = t + 1; s < ns; s++) row[s] = 0.0f;  // the causal mask
          }
          if (dv)
            matmul_in_thread(dvh.data(), P.data(), do_tile, ns, HS, tq, true, false, 1.0f, 1.0f, ns, HS, HS);
          if (!dq && !dk) continue;
          // dP (tq, ns) = dO[t0 : t0+tq] V^T[:, 0 : ns]
          matmul_in_thread(dS.data(), do_tile, vth.data(), tq, ns, HS, false, false, 1.0f, 0.0f, HS, T, ns);
          for (int r = 0; r < tq; r++) {
            float* ds_row = dS.data() + (int64_t)r * ns;
            const float* p_row = P.data() + (int64_t)r * ns;
            float Dt = D[t0 + r];
#pragma omp simd
            for (int s = 0; s < ns; s++) ds_row[s] = p_row[s] * (ds_row[s] - Dt);
          }
          if (dq)
            matmul_in_thread(dqh.data() + (int64_t)t0 * HS, dS.data(), kh.data(), tq, HS, ns, false, false, scale,
                             1.0f, ns, HS, HS);
          if (dk)
            matmul_in_thread(dkh.data(), dS.data(), q_tile, ns, HS, tq, true, false, scale, 1.0f, ns, HS, HS);
        }
        if (dq) scatter_add_head(dq, dqh.data(), b, h, T, NH, HS);
        if (dk) scatter_add_head(dk, dkh.data(), b, h, T, NH, HS);
        if (dv) scatter_add_head(dv, dvh.data(), b, h, T, NH, HS);
      }
  }
}

}  // namespace switchlora::cpu
