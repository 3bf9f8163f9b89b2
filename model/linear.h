// A linear layer without bias, full-rank or with a LoRA adapter (DESIGN §4):
//
//   full-rank:  y = x W^T                      W (out, in) trainable
//   LoRA:       y = x W^T + s (x A^T) B^T      W frozen, A (r, in), B (out, r)
//               s = lora_alpha / r
//
// SwitchLoRA is LoRA whose A rows and B columns are swapped with candidate
// vectors from time to time; the swapping lives in model/switchlora.h.
#pragma once
#include "engine/backend.h"
#include "model/params.h"

namespace switchlora {

struct Linear {
  std::string name;  // HF module name, e.g. "model.layers.0.self_attn.q_proj"
  int in = 0, out = 0;
  int r = 0;         // LoRA rank; 0 means a plain full-rank layer
  float s = 0.0f;    // lora_alpha / r
  Param* W = nullptr;
  Param* A = nullptr;  // (r, in), nullptr when r == 0
  Param* B = nullptr;  // (out, r)
};

// LoRA dropout on the adapter's input (--lora_dropout; ReLoRA's repo uses
// 0.1): y = x W^T + s (drop(x) A^T) B^T. The mask of one layer and
// micro-batch is (seed, stream) (engine/backend.h's dropout), so backward
// recomputes drop(x) instead of keeping it.
struct LoraDropout {
  float p = 0.0f;  // 0: no dropout
  uint64_t seed = 0, stream = 0;
  float* x = nullptr;   // (N, in) scratch: drop(x)
  float* dx = nullptr;  // (N, in) scratch: the adapter's share of dx before the mask
};

// Without dropout, LoRA's layer is one full-rank layer with the merged weight
//   W' = W + s B A:   y = x W'^T,   dx = dy W'
// Building W' (a copy of W and an (out, in, r) product) replaces the (N, out, r)
// product y += s xa B^T in the forward and the (N, in, r) product dx += s (dy B) A
// in the backward: rank-r updates of an N-row matrix, the slowest GEMMs of a
// LoRA step (docs/PERFORMANCE.md). It pays when the batch has more rows than
// W has on either side; w_merged is (out, in) scratch, and null means never merge.
bool lora_merge_pays(const Linear& l, int N, const LoraDropout& d);
// The same rule on the sizes alone (bench --gemm_shapes: which products a step has).
bool lora_merge_pays(int N, int in, int out, int r, float dropout);

// y (N, out) = x W^T [+ s xa B^T];  xa (N, r) = drop(x) A^T is saved for backward.
void linear_layer_forward(Backend& be, const Linear& l, float* y, float* xa, const float* x, int N,
                          const LoraDropout& d = {}, float* w_merged = nullptr);

// dx (N, in) = dx_beta dx + dy W [+ drop'(s (dy B) A)];  dW += dy^T x when W
// is trainable;  dB += s dy^T xa;  dA += s (dy B)^T drop(x).   dxa: (N, r)
// scratch. dx_beta = 0 makes this layer dx's first writer: no zeroing needed.
void linear_layer_backward(Backend& be, const Linear& l, float* dx, float* dxa, const float* dy,
                           const float* x, const float* xa, int N, const LoraDropout& d = {},
                           float* w_merged = nullptr, float dx_beta = 1.0f);

}  // namespace switchlora
