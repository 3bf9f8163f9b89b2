// AdamW with per-tensor, per-row or per-column step counters (DESIGN §5):
// the checks, the state and its resets. The update itself is the backend's
// adamw_update (engine/cpu/adamw.cpp, engine/cuda/adamw.cu), one call per tensor.
#include "optim/adamw.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "engine/error.h"

namespace switchlora {

namespace {

// How many step counters (and frozen flags) a tensor has.
int num_vectors(const OptimParam& t) {
  switch (t.counter) {
    case StepCounter::kPerRow: return t.rows;
    case StepCounter::kPerColumn: return t.cols;
    case StepCounter::kPerTensor: return 1;
  }
  return 1;
}

const char* counter_name(StepCounter c) {
  switch (c) {
    case StepCounter::kPerRow: return "per-row";
    case StepCounter::kPerColumn: return "per-column";
    case StepCounter::kPerTensor: return "per-tensor";
  }
  return "?";
}

void check_unit_interval(const char* field, float x) {
  if (!(x >= 0.0f && x < 1.0f))
    throw Error("AdamW: " + std::string(field) + " = " + std::to_string(x) +
                " is outside [0, 1)");
}

}  // namespace

AdamW::AdamW(const AdamWConfig& config, std::vector<OptimParam> params, size_t numel,
             Backend& be)
    : config_(config), params_(std::move(params)), be_(be), m_(be, numel), v_(be, numel) {
  check_unit_interval("beta1", config_.beta1);
  check_unit_interval("beta2", config_.beta2);
  if (!(config_.eps > 0.0f))
    throw Error("AdamW: eps = " + std::to_string(config_.eps) + " must be > 0");
  if (!(config_.weight_decay >= 0.0f))
    throw Error("AdamW: weight_decay = " + std::to_string(config_.weight_decay) +
                " must be >= 0");

  // Tensors must lie inside the buffer and not overlap: an element updated
  // twice per step would silently take two Adam steps.
  std::vector<size_t> order(params_.size());
  for (size_t i = 0; i < order.size(); i++) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return params_[a].offset < params_[b].offset; });
  size_t end_of_previous = 0;
  for (size_t i : order) {
    const OptimParam& t = params_[i];
    if (t.rows < 1 || t.cols < 1)
      throw Error("AdamW: parameter '" + t.name + "' has shape (" +
                  std::to_string(t.rows) + ", " + std::to_string(t.cols) + ")");
    size_t end = t.offset + (size_t)t.rows * t.cols;
    if (end > numel)
      throw Error("AdamW: parameter '" + t.name + "' ends at float " +
                  std::to_string(end) + ", past the buffer of " + std::to_string(numel));
    if (t.offset < end_of_previous)
      throw Error("AdamW: parameter '" + t.name + "' at offset " +
                  std::to_string(t.offset) + " overlaps the tensor before it");
    end_of_previous = end;
  }

  counter_offset_.resize(params_.size());
  size_t total = 0;
  for (size_t i = 0; i < params_.size(); i++) {
    counter_offset_[i] = total;
    total += num_vectors(params_[i]);
  }
  counters_ = Buffer<int64_t>(be_, total);
  frozen_ = Buffer<uint8_t>(be_, total);
  frozen_host_.assign(total, 0);
}

void AdamW::step(float* params, const float* grads, float lr) {
  // Gather the frozen flags the SwitchLoRA layers keep on the host into one
  // upload: a few hundred bytes per step.
  bool any_frozen = false;
  for (size_t ip = 0; ip < params_.size(); ip++) {
    const OptimParam& t = params_[ip];
    if (!t.frozen) continue;
    any_frozen = true;
    std::copy_n(t.frozen, num_vectors(t), frozen_host_.begin() + (long)counter_offset_[ip]);
  }
  if (any_frozen) be_.copy(frozen_.data(), frozen_host_.data(), frozen_host_.size());
  for (size_t ip = 0; ip < params_.size(); ip++) {
    const OptimParam& t = params_[ip];
    const size_t k = counter_offset_[ip];
    be_.adamw_update(params, m_.data(), v_.data(), grads, counters_.data() + k,
                     t.frozen ? frozen_.data() + k : nullptr, t, config_, lr);
  }
}

void AdamW::reset_vectors(int p, int begin, int end, bool moments, bool counter) {
  if (p < 0 || p >= (int)params_.size())
    throw Error("AdamW::reset_vectors: parameter index " + std::to_string(p) +
                " is outside [0, " + std::to_string(params_.size()) + ")");
  const OptimParam& t = params_[p];
  const int nvec = num_vectors(t);
  if (begin < 0 || begin > end || end > nvec)
    throw Error("AdamW::reset_vectors: parameter '" + t.name + "' (" +
                counter_name(t.counter) + ", " + std::to_string(nvec) +
                " vectors): bad range [" + std::to_string(begin) + ", " +
                std::to_string(end) + ")");
  if (end == begin) return;
  if (counter) be_.zero(counters_.data() + counter_offset_[p] + begin, (end - begin) * sizeof(int64_t));
  if (!moments) return;
  const size_t C = t.cols, row_bytes = C * sizeof(float);
  for (float* x : {m_.data() + t.offset, v_.data() + t.offset}) {
    switch (t.counter) {
      case StepCounter::kPerTensor: be_.zero(x, t.rows * row_bytes); break;
      case StepCounter::kPerRow: be_.zero(x + begin * C, (end - begin) * row_bytes); break;
      case StepCounter::kPerColumn:  // columns [begin, end) of every row
        be_.zero_2d(x + begin, row_bytes, (end - begin) * sizeof(float), t.rows);
        break;
    }
  }
}

int64_t AdamW::counter(int p, int vector) const {
  if (p < 0 || p >= (int)params_.size())
    throw Error("AdamW::counter: parameter index " + std::to_string(p) +
                " is outside [0, " + std::to_string(params_.size()) + ")");
  const OptimParam& t = params_[p];
  if (vector < 0 || vector >= num_vectors(t))
    throw Error("AdamW::counter: parameter '" + t.name + "' (" +
                counter_name(t.counter) + ") has no vector " + std::to_string(vector));
  int64_t k = 0;
  be_.copy_and_wait(&k, counters_.data() + counter_offset_[p] + vector, sizeof k);
  return k;
}

std::vector<float> AdamW::m() const { return m_.to_host(); }
std::vector<float> AdamW::v() const { return v_.to_host(); }
std::vector<int64_t> AdamW::counters() const { return counters_.to_host(); }

void AdamW::set_state(const std::vector<float>& m, const std::vector<float>& v,
                      const std::vector<int64_t>& counters, const std::string& where) {
  if (m.size() != m_.size() || v.size() != v_.size() || counters.size() != counters_.size())
    throw Error(where + ": optimizer state has " + std::to_string(m.size()) + " moments and " +
                std::to_string(counters.size()) + " step counters, this model needs " +
                std::to_string(m_.size()) + " and " + std::to_string(counters_.size()));
  m_.from_host(m);
  v_.from_host(v);
  counters_.from_host(counters);
}

}  // namespace switchlora
