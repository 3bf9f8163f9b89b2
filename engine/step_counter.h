// Which step count an AdamW element's bias correction reads (DESIGN §5): one
// per tensor, one per row (LoRA's A) or one per column (LoRA's B), so that a
// switched vector's counterpart restarts its own bias correction.
#pragma once

namespace switchlora {

enum class StepCounter { kPerTensor, kPerRow, kPerColumn };

// How many step counts a (rows, cols) tensor has under `c`.
inline int num_counters(StepCounter c, int rows, int cols) {
  return c == StepCounter::kPerRow ? rows : c == StepCounter::kPerColumn ? cols : 1;
}

}  // namespace switchlora
