// AdamW (DESIGN §5) over a list of tensors, each with its own moments and
// step counters: one count per tensor for ordinary parameters, one per ROW
// of a LoRA A and one per COLUMN of a LoRA B, so that resetting one vector
// restarts its own bias correction.
//
//   m = b1 m + (1 - b1) g          v = b2 v + (1 - b2) g^2
//   k = the element's counter after incrementing it
//   p = p - lr * wd * p            (decoupled weight decay, PyTorch's order)
//   p = p - lr * (m / (1 - b1^k)) / (sqrt(v / (1 - b2^k)) + eps)
//
// The state of a tensor has the tensor's own shape, which need not be a
// model parameter's: GaLore's Adam runs on an (r, n) projection of a
// gradient. The update itself is the backend's adamw_update, one call per
// tensor (engine/cpu/adamw.cpp, engine/cuda/adamw.cu).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/backend.h"

namespace switchlora {

struct AdamWConfig {
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
};

// One tensor AdamW updates.
struct AdamTensor {
  std::string name;
  float* param = nullptr;       // (rows, cols) backend memory, updated in place
  const float* grad = nullptr;  // (rows, cols) backend memory
  int rows = 1, cols = 1;       // a 1-D tensor has rows = 1
  StepCounter counter = StepCounter::kPerTensor;
  // One flag per step count, a HOST array (owned by a SwitchLoRA layer) read
  // at every step(): a vector with frozen[i] != 0 is skipped entirely: no
  // moment update, no counter increment, no weight decay. nullptr: none frozen.
  const uint8_t* frozen = nullptr;
  // This tensor's learning rate as a multiple of step()'s (--non_adapter_lr).
  float lr_scale = 1.0f;
  size_t numel() const { return (size_t)rows * cols; }
};

// The moments, counters and frozen flags live in the backend's memory, next
// to the tensors they update, carved out of one buffer each in list order.
class AdamW {
 public:
  AdamW(const AdamWConfig& config, std::vector<AdamTensor> tensors, Backend& be = cpu_backend());

  // One update of every tensor.
  void step(float lr);
  AdamWConfig& config() { return config_; }  // GaLore adjusts eps per step

  // Reset the state of vectors [begin, end) of tensor p: rows of a kPerRow
  // tensor, columns of a kPerColumn tensor (a kPerTensor tensor only accepts
  // the whole range [0, 1)). moments: zero m and v; counter: zero the step count.
  void reset_vectors(int p, int begin, int end, bool moments, bool counter);

  int64_t counter(int p, int vector) const;  // step count of one vector
  const std::vector<AdamTensor>& tensors() const { return tensors_; }
  int index_of(const std::string& name) const;  // -1 when absent

  // State on the host: one tensor's moments (its numel each) and step counts,
  // or all of them, concatenated in list order.
  std::vector<float> m(int p) const;
  std::vector<float> v(int p) const;
  std::vector<int64_t> counters(int p) const;
  std::vector<float> m() const { return m_.to_host(); }
  std::vector<float> v() const { return v_.to_host(); }
  std::vector<int64_t> counters() const { return counters_.to_host(); }
  // Throws naming `where` and the tensor when a size does not match.
  void set_state(int p, const std::vector<float>& m, const std::vector<float>& v,
                 const std::vector<int64_t>& counters, const std::string& where);

 private:
  AdamWConfig config_;
  std::vector<AdamTensor> tensors_;
  std::vector<size_t> state_offset_;    // where each tensor's m and v start
  std::vector<size_t> counter_offset_;  // where each tensor's counters start
  Backend& be_;
  // Backend memory: m, v (sum of numel floats), counters (int64), frozen
  // (uint8, one per counter, uploaded from the tensors' host flags at each step).
  Buffer<float> m_, v_;
  Buffer<int64_t> counters_;
  Buffer<uint8_t> frozen_;
  std::vector<uint8_t> frozen_host_;
};

// Global-norm clipping: if ||g|| > max_norm, g *= max_norm / ||g||.
// grads: backend memory. Returns the norm before clipping (accumulated in
// double). max_norm <= 0: no clip.
float clip_grad_norm(float* grads, size_t n, float max_norm, Backend& be = cpu_backend());

}  // namespace switchlora
