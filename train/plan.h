// What a run costs before it runs, from the config alone (no model is
// allocated, so 1B and 7B are instant): parameter counts, bytes all-reduced
// per optimizer step, and a memory estimate per rank, for any method of
// train/methods.cpp (each supplies its counts: MethodInfo::count).
//
// The counts mirror the parameters Llama (model/llama.cpp) builds and the
// pools SwitchLora (model/switchlora.cpp) builds; tests/test_plan.cpp checks
// that they agree for several configs and methods.
#pragma once
#include <cstddef>
#include <string>

#include "model/config.h"
#include "train/method.h"
#include "train/options.h"

namespace switchlora {

// The counts of the run `o` describes (its method, rank, projection type).
ParamCounts count_parameters(const LlamaConfig& c, const TrainOptions& o);

struct MemoryPlan {
  double weights = 0, gradients = 0, optimizer = 0;
  double candidates_device = 0, candidates_host = 0;
  double activations = 0;
  double device() const { return weights + gradients + optimizer + candidates_device + activations; }
};

// Bytes per rank with every value stored in `bytes_per_value` (4 for fp32,
// 2 for bf16): gradients for trainable values only; the method's optimizer
// state (AdamW: two moments per trainable value; GaLore: of the projected
// gradients, next to its projectors); SwitchLoRA's candidates on the device
// or the host as o.sw says; activations as the engine's per-micro-batch
// arena holds them for o.batch_size x o.max_length tokens (saved for
// backward, plus backward scratch, plus LoRA dropout's when it is on).
MemoryPlan plan_memory(const LlamaConfig& c, const TrainOptions& o, int bytes_per_value);

}  // namespace switchlora
