// For the GPU tests (test_cuda_ops, test_cuda_model): sets a backend's
// precision for one scope and restores fp32 however the scope ends, so a
// failed check cannot leave later cases multiplying in bf16.
#pragma once
#include "engine/backend.h"

namespace switchlora::test {

struct PrecisionScope {
  PrecisionScope(Backend& b, Precision p) : be(b) { be.set_precision(p); }
  ~PrecisionScope() { be.set_precision(Precision::kFp32); }
  PrecisionScope(const PrecisionScope&) = delete;
  PrecisionScope& operator=(const PrecisionScope&) = delete;
  Backend& be;
};

}  // namespace switchlora::test
