// Causal multi-head self-attention with a fused softmax, flash-attention
// style (Dao et al. 2022): no (T, T) matrix ever reaches global memory. The
// forward keeps each softmax row's log-sum-exp; the backward recomputes the
// probabilities from q, k and lse. Written for clarity over speed: plain
// fp32 dot products out of shared memory, no tensor cores.
//
// Work split: a block of kQ warps per (query or key tile, head, batch). A
// warp owns one row of its tile; the other side streams through shared
// memory in tiles of kKV = 32 rows, one per lane, so lane j computes the
// score of row j and the products with V, K or Q are accumulated by
// broadcasting each lane's probability with a shuffle. A lane keeps the
// output dimensions d = lane + 32 i, i < kDims, in registers.
//
// Shared tiles that lanes index by row are padded to HS + 1 floats per row:
// the stride is then odd and the 32 lanes of a dot product hit 32 banks.
#include <cmath>
#include <string>

#include "engine/cuda/common.cuh"
#include "engine/cuda/ops.h"

namespace switchlora::cuda {

constexpr int kQ = 8;                  // rows (warps) per block
constexpr int kKV = kWarp;             // rows per streamed tile, one per lane
constexpr int kMaxHS = 128;            // largest head size (LLaMA 7b)
constexpr int kDims = kMaxHS / kWarp;  // output dimensions per lane

// Offset of element d of row t of head h, batch b in a (B, T, NH, HS) tensor.
__device__ inline int64_t at(int b, int t, int h, int d, int T, int NH, int HS) {
  return (((int64_t)b * T + t) * NH + h) * HS + d;
}

// a (HS) . b (HS), one lane, serially.
__device__ inline float dot(const float* a, const float* b, int HS) {
  float acc = 0.0f;
  for (int d = 0; d < HS; d++) acc += a[d] * b[d];
  return acc;
}

// dst (rows, stride) = rows r0 .. r0+rows-1 of head (b, h) of src; rows
// past T are zero so that every lane reads finite numbers. All threads.
__device__ inline void load_rows(float* dst, int stride, const float* src, int r0, int rows,
                                 int b, int h, int T, int NH, int HS) {
  for (int i = threadIdx.x; i < rows * HS; i += blockDim.x) {
    int r = i / HS, d = i % HS, t = r0 + r;
    dst[r * stride + d] = t < T ? src[at(b, t, h, d, T, NH, HS)] : 0.0f;
  }
}

// Grid (query tiles, NH, B). Warp w owns query t = t0 + w; keys stream in
// tiles of kKV. Online softmax: with the running max m and sum l,
//   m' = max(m, max_j s_j),   l' = l e^(m - m') + sum_j e^(s_j - m'),
//   acc' = acc e^(m - m') + sum_j e^(s_j - m') v_j,
// and at the end out = acc / l, lse = m + log l.
__global__ void attention_forward_kernel(float* out, float* lse, const float* q, const float* k,
                                         const float* v, int T, int NH, int HS, float scale) {
  extern __shared__ float smem[];
  const int P = HS + 1;
  float* q_sh = smem;                // (kQ, HS)
  float* k_sh = q_sh + kQ * HS;      // (kKV, P)
  float* v_sh = k_sh + kKV * P;      // (kKV, P)
  const int lane = threadIdx.x % kWarp, w = threadIdx.x / kWarp;
  const int h = blockIdx.y, b = blockIdx.z;
  const int t0 = blockIdx.x * kQ, t = t0 + w;
  const int t_last = min(t0 + kQ, T) - 1;  // the tile's last query sees keys 0 .. t_last

  load_rows(q_sh, HS, q, t0, kQ, b, h, T, NH, HS);
  float m = -INFINITY, l = 0.0f, acc[kDims] = {};
  for (int s0 = 0; s0 <= t_last; s0 += kKV) {
    __syncthreads();  // the previous tile is no longer read (and q_sh is loaded)
    load_rows(k_sh, P, k, s0, kKV, b, h, T, NH, HS);
    load_rows(v_sh, P, v, s0, kKV, b, h, T, NH, HS);
    __syncthreads();
    if (t >= T || s0 > t) continue;  // whole warp: nothing of this tile is visible
    const int s = s0 + lane;
    const float score = s <= t ? scale * dot(q_sh + w * HS, k_sh + lane * P, HS) : -INFINITY;
    const float m_new = fmaxf(m, warp_max(score));  // finite: key s0 <= t is visible
    const float p = expf(score - m_new);            // 0 for a masked key
    const float corr = expf(m - m_new);             // 0 on the first tile (m = -inf)
    l = l * corr + warp_sum(p);
#pragma unroll
    for (int i = 0; i < kDims; i++) acc[i] *= corr;
    for (int j = 0; j < kKV; j++) {
      const float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
      for (int i = 0; i < kDims; i++) {
        int d = lane + i * kWarp;
        if (d < HS) acc[i] += pj * v_sh[j * P + d];
      }
    }
    m = m_new;
  }
  if (t >= T) return;
#pragma unroll
  for (int i = 0; i < kDims; i++) {
    int d = lane + i * kWarp;
    if (d < HS) out[at(b, t, h, d, T, NH, HS)] = acc[i] / l;
  }
  if (lane == 0) lse[((int64_t)b * NH + h) * T + t] = m + logf(l);
}

// Backward, with P recomputed as exp(scale q.k - lse) (0 where masked):
//   dV += P^T dO,   dP = dO V^T,   dS = P * (dP - D),   D[t] = dO[t] . O[t]
//   dQ += scale dS K,   dK += scale dS^T Q
// Two kernels so that every gradient row has exactly one writer (no atomics,
// deterministic): one walks the keys of each query row for dQ, the other
// the queries of each key row for dK and dV.

// Grid (query tiles, NH, B). Warp w owns query t = t0 + w.
__global__ void attention_backward_dq_kernel(float* dq, const float* dout, const float* q,
                                             const float* k, const float* v, const float* out,
                                             const float* lse, int T, int NH, int HS,
                                             float scale) {
  extern __shared__ float smem[];
  const int P = HS + 1;
  float* q_sh = smem;                // (kQ, HS)
  float* do_sh = q_sh + kQ * HS;     // (kQ, HS)
  float* k_sh = do_sh + kQ * HS;     // (kKV, P)
  float* v_sh = k_sh + kKV * P;      // (kKV, P)
  const int lane = threadIdx.x % kWarp, w = threadIdx.x / kWarp;
  const int h = blockIdx.y, b = blockIdx.z;
  const int t0 = blockIdx.x * kQ, t = t0 + w;
  const int t_last = min(t0 + kQ, T) - 1;

  load_rows(q_sh, HS, q, t0, kQ, b, h, T, NH, HS);
  load_rows(do_sh, HS, dout, t0, kQ, b, h, T, NH, HS);
  float D = 0.0f, l = 0.0f;
  if (t < T) {
    for (int d = lane; d < HS; d += kWarp) D += dout[at(b, t, h, d, T, NH, HS)] * out[at(b, t, h, d, T, NH, HS)];
    D = warp_sum(D);
    l = lse[((int64_t)b * NH + h) * T + t];
  }
  float acc[kDims] = {};
  for (int s0 = 0; s0 <= t_last; s0 += kKV) {
    __syncthreads();
    load_rows(k_sh, P, k, s0, kKV, b, h, T, NH, HS);
    load_rows(v_sh, P, v, s0, kKV, b, h, T, NH, HS);
    __syncthreads();
    if (t >= T || s0 > t) continue;
    const int s = s0 + lane;
    float ds = 0.0f;
    if (s <= t) {
      float p = expf(scale * dot(q_sh + w * HS, k_sh + lane * P, HS) - l);
      float dp = dot(do_sh + w * HS, v_sh + lane * P, HS);
      ds = p * (dp - D);
    }
    for (int j = 0; j < kKV; j++) {
      const float dsj = __shfl_sync(0xffffffffu, ds, j);
#pragma unroll
      for (int i = 0; i < kDims; i++) {
        int d = lane + i * kWarp;
        if (d < HS) acc[i] += dsj * k_sh[j * P + d];
      }
    }
  }
  if (t >= T) return;
#pragma unroll
  for (int i = 0; i < kDims; i++) {
    int d = lane + i * kWarp;
    if (d < HS) dq[at(b, t, h, d, T, NH, HS)] += scale * acc[i];
  }
}

// Grid (key tiles, NH, B). Warp w owns key s = s_first + w; the queries that
// see it, t >= s, stream in tiles of kKV starting at the block's first key.
// D of each streamed query is recomputed here (an HS-long dot product per
// query and tile, small next to the tile's kKV x HS products).
__global__ void attention_backward_dkv_kernel(float* dk, float* dv, const float* dout,
                                              const float* q, const float* k, const float* v,
                                              const float* out, const float* lse, int T,
                                              int NH, int HS, float scale) {
  extern __shared__ float smem[];
  const int P = HS + 1;
  float* k_sh = smem;                // (kQ, HS)
  float* v_sh = k_sh + kQ * HS;      // (kQ, HS)
  float* q_sh = v_sh + kQ * HS;      // (kKV, P)
  float* do_sh = q_sh + kKV * P;     // (kKV, P)
  float* lse_sh = do_sh + kKV * P;   // (kKV)
  float* D_sh = lse_sh + kKV;        // (kKV)
  const int lane = threadIdx.x % kWarp, w = threadIdx.x / kWarp;
  const int h = blockIdx.y, b = blockIdx.z;
  const int s_first = blockIdx.x * kQ, s = s_first + w;
  const float* lse_bh = lse + ((int64_t)b * NH + h) * T;

  load_rows(k_sh, HS, k, s_first, kQ, b, h, T, NH, HS);
  load_rows(v_sh, HS, v, s_first, kQ, b, h, T, NH, HS);
  float dk_acc[kDims] = {}, dv_acc[kDims] = {};
  for (int t0 = s_first; t0 < T; t0 += kKV) {
    __syncthreads();
    load_rows(q_sh, P, q, t0, kKV, b, h, T, NH, HS);
    load_rows(do_sh, P, dout, t0, kKV, b, h, T, NH, HS);
    for (int j = threadIdx.x; j < kKV; j += blockDim.x) lse_sh[j] = t0 + j < T ? lse_bh[t0 + j] : 0.0f;
    __syncthreads();
    for (int j = w; j < kKV; j += kQ) {  // D[t] = dO[t] . O[t], one warp per query
      const int tj = t0 + j;
      float D = 0.0f;
      if (tj < T)
        for (int d = lane; d < HS; d += kWarp) D += do_sh[j * P + d] * out[at(b, tj, h, d, T, NH, HS)];
      D = warp_sum(D);
      if (lane == 0) D_sh[j] = D;
    }
    __syncthreads();
    if (s >= T) continue;
    const int tq = t0 + lane;
    float p = 0.0f, ds = 0.0f;
    if (tq >= s && tq < T) {
      p = expf(scale * dot(q_sh + lane * P, k_sh + w * HS, HS) - lse_sh[lane]);
      float dp = dot(do_sh + lane * P, v_sh + w * HS, HS);
      ds = p * (dp - D_sh[lane]);
    }
    for (int j = 0; j < kKV; j++) {
      const float pj = __shfl_sync(0xffffffffu, p, j);
      const float dsj = __shfl_sync(0xffffffffu, ds, j);
#pragma unroll
      for (int i = 0; i < kDims; i++) {
        int d = lane + i * kWarp;
        if (d < HS) {
          dv_acc[i] += pj * do_sh[j * P + d];
          dk_acc[i] += dsj * q_sh[j * P + d];
        }
      }
    }
  }
  if (s >= T) return;
#pragma unroll
  for (int i = 0; i < kDims; i++) {
    int d = lane + i * kWarp;
    if (d >= HS) continue;
    if (dk) dk[at(b, s, h, d, T, NH, HS)] += scale * dk_acc[i];
    if (dv) dv[at(b, s, h, d, T, NH, HS)] += dv_acc[i];
  }
}

static void check_head_size(int HS, const char* op) {
  if (HS < 1 || HS > kMaxHS)
    throw Error(std::string(op) + ": head size HS = " + std::to_string(HS) +
                " is outside [1, " + std::to_string(kMaxHS) + "] (the CUDA kernel's limit)");
}

static dim3 grid_for(int B, int T, int NH) { return dim3((T + kQ - 1) / kQ, NH, B); }

void attention_forward(float* out, float* lse, const float* q, const float* k,
                       const float* v, int B, int T, int NH, int HS) {
  check_head_size(HS, "attention_forward");
  if (B == 0 || T == 0 || NH == 0) return;
  const float scale = 1.0f / std::sqrt((float)HS);
  const size_t smem = sizeof(float) * (kQ * HS + 2 * kKV * (HS + 1));
  attention_forward_kernel<<<grid_for(B, T, NH), kQ * kWarp, smem>>>(out, lse, q, k, v, T, NH,
                                                                      HS, scale);
  CUDA_CHECK_LAUNCH();
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout,
                        const float* q, const float* k, const float* v,
                        const float* out, const float* lse, int B, int T, int NH, int HS) {
  check_head_size(HS, "attention_backward");
  if (B == 0 || T == 0 || NH == 0) return;
  const float scale = 1.0f / std::sqrt((float)HS);
  if (dq) {
    const size_t smem = sizeof(float) * (2 * kQ * HS + 2 * kKV * (HS + 1));
    attention_backward_dq_kernel<<<grid_for(B, T, NH), kQ * kWarp, smem>>>(
        dq, dout, q, k, v, out, lse, T, NH, HS, scale);
    CUDA_CHECK_LAUNCH();
  }
  if (dk || dv) {
    const size_t smem = sizeof(float) * (2 * kQ * HS + 2 * kKV * (HS + 1) + 2 * kKV);
    attention_backward_dkv_kernel<<<grid_for(B, T, NH), kQ * kWarp, smem>>>(
        dk, dv, dout, q, k, v, out, lse, T, NH, HS, scale);
    CUDA_CHECK_LAUNCH();
  }
}

}  // namespace switchlora::cuda
