// What a run costs before it runs, from the config alone (no model is
// allocated, so 1B and 7B are instant): parameter counts, bytes all-reduced
// per optimizer step, and a memory estimate per rank.
//
// The counts mirror the parameters Llama (model/llama.cpp) builds and the
// pools SwitchLora (model/switchlora.cpp) builds; tests/test_plan.cpp checks
// that they agree for several configs and methods.
#pragma once
#include <cstddef>
#include <string>

#include "model/config.h"

namespace switchlora {

enum class Method { kFullRank, kLora, kSwitchLora, kGalore };
const char* method_name(Method m);

struct ParamCounts {
  size_t trainable = 0;   // all-reduced every step
  size_t frozen = 0;      // LoRA's W: never sent
  size_t candidates = 0;  // SwitchLoRA's pools: never sent
  size_t total() const { return trainable + frozen; }
};

// Full rank: every weight trains. LoRA and SwitchLoRA: each of the 7 linear
// layers per block keeps W (out, in) frozen and trains A (r, in), B (out, r);
// SwitchLoRA adds min(in, out) candidate rows of length in for A and
// min(in, out) candidate columns of length out for B. GaLore trains every
// weight like full rank. Embeddings, lm_head and norms always train.
ParamCounts count_parameters(const LlamaConfig& c, Method m, int r);

struct MemoryPlan {
  double weights = 0, gradients = 0, optimizer = 0;
  double candidates_device = 0, candidates_host = 0;
  double activations = 0;
  double device() const { return weights + gradients + optimizer + candidates_device + activations; }
};

// Bytes per rank with every value stored in `bytes_per_value` (4 for fp32,
// 2 for bf16): gradients for trainable values only; AdamW's two moments per
// trainable value, except GaLore's, which are kept for the rank-r projection
// of each adapted weight's gradient (r x max(in, out)) next to its projector
// (r x min(in, out)); activations as the engine's per-micro-batch arena holds
// them for batch B of T tokens (saved for backward, plus backward scratch).
MemoryPlan plan_memory(const LlamaConfig& c, Method m, int r, int B, int T, int bytes_per_value,
                       bool candidates_on_device);

}  // namespace switchlora
