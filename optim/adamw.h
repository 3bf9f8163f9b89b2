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

#include "engine/backend.h"
#include "optim/optim_param.h"

namespace switchlora {

// The moments, counters and frozen flags live in the backend's memory, next
// to the parameters they update.
class AdamW {
 public:
  AdamW(const AdamWConfig& config, std::vector<OptimParam> params, size_t numel,
        Backend& be = cpu_backend());

  // One update of every element of the trainable buffer.
  // params, grads: (numel) floats in backend memory, laid out as described by
  // the OptimParams.
  void step(float* params, const float* grads, float lr);

  // Reset the state of vectors [begin, end) of parameter p: rows of a kPerRow
  // tensor, columns of a kPerColumn tensor (a kPerTensor tensor only accepts
  // the whole range [0, 1)). moments: zero m and v; counter: zero the step count.
  void reset_vectors(int p, int begin, int end, bool moments, bool counter);

  int64_t counter(int p, int vector) const;  // step count of one vector
  const std::vector<OptimParam>& params() const { return params_; }

  // State for checkpoints, on the host: m, v (numel each) and all counters, flat.
  std::vector<float> m() const;
  std::vector<float> v() const;
  std::vector<int64_t> counters() const;
  // Throws naming `where` when a size does not match this optimizer's.
  void set_state(const std::vector<float>& m, const std::vector<float>& v,
                 const std::vector<int64_t>& counters, const std::string& where);

 private:
  AdamWConfig config_;
  std::vector<OptimParam> params_;
  std::vector<size_t> counter_offset_;  // where each param's counters start in counters_
  Backend& be_;
  // Backend memory: m, v (numel floats), counters (int64), frozen (uint8, one
  // per counter, uploaded from the OptimParams' host flags at each step).
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
