// AdamW over the contiguous trainable buffer (DESIGN §5), with the step
// counter that SwitchLoRA needs: one per tensor for ordinary parameters, one
// per ROW of a LoRA A and one per COLUMN of a LoRA B, so that resetting one
// vector restarts its own bias correction.
//
//   m = b1 m + (1 - b1) g          v = b2 v + (1 - b2) g^2
//   k = the element's counter after incrementing it
//   p = p - lr * wd * p            (decoupled weight decay, PyTorch's order)
//   p = p - lr * (m / (1 - b1^k)) / (sqrt(v / (1 - b2^k)) + eps)
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace switchlora {

enum class StepCounter { kPerTensor, kPerRow, kPerColumn };

// One tensor inside the trainable buffer.
struct OptimParam {
  std::string name;
  size_t offset = 0;        // in floats, from the start of the trainable buffer
  int rows = 1, cols = 1;   // (rows, cols) row-major; a 1-D tensor has rows = 1
  StepCounter counter = StepCounter::kPerTensor;
  // Per vector (rows for kPerRow, cols for kPerColumn), owned by a SwitchLoRA
  // layer; a vector with frozen[i] != 0 is skipped entirely by step(): no
  // moment update, no counter increment, no weight decay. nullptr: none frozen.
  const uint8_t* frozen = nullptr;
};

struct AdamWConfig {
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
};

class AdamW {
 public:
  AdamW(const AdamWConfig& config, std::vector<OptimParam> params, size_t numel);

  // One update of every element of the trainable buffer.
  // params, grads: (numel) floats, laid out as described by the OptimParams.
  void step(float* params, const float* grads, float lr);

  // Reset the state of vectors [begin, end) of parameter p: rows of a kPerRow
  // tensor, columns of a kPerColumn tensor (a kPerTensor tensor only accepts
  // the whole range [0, 1)). moments: zero m and v; counter: zero the step count.
  void reset_vectors(int p, int begin, int end, bool moments, bool counter);

  int64_t counter(int p, int vector) const;  // step count of one vector
  const std::vector<OptimParam>& params() const { return params_; }

  // State for checkpoints: m, v (numel each) and all counters, flat.
  std::vector<float>& m() { return m_; }
  std::vector<float>& v() { return v_; }
  std::vector<int64_t>& counters() { return counters_; }

 private:
  AdamWConfig config_;
  std::vector<OptimParam> params_;
  std::vector<size_t> counter_offset_;  // where each param's counters start in counters_
  std::vector<float> m_, v_;
  std::vector<int64_t> counters_;
};

// Global-norm clipping: if ||g|| > max_norm, g *= max_norm / ||g||.
// Returns the norm before clipping (accumulated in double). max_norm <= 0: no clip.
float clip_grad_norm(float* grads, size_t n, float max_norm);

}  // namespace switchlora
