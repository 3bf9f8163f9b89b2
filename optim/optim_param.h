// What the optimizer knows of one trainable tensor, and AdamW's settings:
// the part of optim/adamw.h that the backends' AdamW kernels need too.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace switchlora {

enum class StepCounter { kPerTensor, kPerRow, kPerColumn };

// One tensor inside the trainable buffer.
struct OptimParam {
  std::string name;
  size_t offset = 0;        // in floats, from the start of the trainable buffer
  int rows = 1, cols = 1;   // (rows, cols) row-major; a 1-D tensor has rows = 1
  StepCounter counter = StepCounter::kPerTensor;
  // Per vector (rows for kPerRow, cols for kPerColumn), a HOST array owned by
  // a SwitchLoRA layer, read at every step(); a vector with frozen[i] != 0 is
  // skipped entirely: no moment update, no counter increment, no weight
  // decay. nullptr: none frozen.
  const uint8_t* frozen = nullptr;
};

struct AdamWConfig {
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
};

}  // namespace switchlora
