// AdamW with per-tensor, per-row or per-column step counters (DESIGN §5):
// the checks, the state (shaped by the tensors it updates) and its resets. The update itself is the backend's
// adamw_update (engine/cpu/adamw.cpp, engine/cuda/adamw.cu), one call per tensor.
#include "optim/adamw.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "engine/error.h"

namespace switchlora {

namespace {

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

AdamW::AdamW(const AdamWConfig& config, std::vector<AdamTensor> tensors, Backend& be)
    : config_(config), tensors_(std::move(tensors)), be_(be) {
  check_unit_interval("beta1", config_.beta1);
  check_unit_interval("beta2", config_.beta2);
  if (!(config_.eps > 0.0f))
    throw Error("AdamW: eps = " + std::to_string(config_.eps) + " must be > 0");
  if (!(config_.weight_decay >= 0.0f))
    throw Error("AdamW: weight_decay = " + std::to_string(config_.weight_decay) +
                " must be >= 0");

  // Tensors must not overlap: an element updated twice per step would
  // silently take two Adam steps.
  std::vector<size_t> order(tensors_.size());
  for (size_t i = 0; i < order.size(); i++) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return tensors_[a].param < tensors_[b].param; });
  const float* end_of_previous = nullptr;
  for (size_t i : order) {
    const AdamTensor& t = tensors_[i];
    if (t.rows < 1 || t.cols < 1)
      throw Error("AdamW: tensor '" + t.name + "' has shape (" + std::to_string(t.rows) + ", " +
                  std::to_string(t.cols) + ")");
    if (!t.param || !t.grad) throw Error("AdamW: tensor '" + t.name + "' has no parameter or gradient");
    if (end_of_previous && t.param < end_of_previous)
      throw Error("AdamW: tensor '" + t.name + "' overlaps the tensor before it");
    end_of_previous = t.param + t.numel();
  }

  // The state, carved out of one buffer per kind in list order.
  state_offset_.resize(tensors_.size());
  counter_offset_.resize(tensors_.size());
  size_t numel = 0, counters = 0;
  for (size_t i = 0; i < tensors_.size(); i++) {
    const AdamTensor& t = tensors_[i];
    state_offset_[i] = numel;
    counter_offset_[i] = counters;
    numel += t.numel();
    counters += num_counters(t.counter, t.rows, t.cols);
  }
  m_ = Buffer<float>(be_, numel);
  v_ = Buffer<float>(be_, numel);
  counters_ = Buffer<int64_t>(be_, counters);
  frozen_ = Buffer<uint8_t>(be_, counters);
  frozen_host_.assign(counters, 0);
}

void AdamW::step(float lr) {
  // Gather the frozen flags the SwitchLoRA layers keep on the host into one
  // upload: a few hundred bytes per step.
  bool any_frozen = false;
  for (size_t i = 0; i < tensors_.size(); i++) {
    const AdamTensor& t = tensors_[i];
    if (!t.frozen) continue;
    any_frozen = true;
    std::copy_n(t.frozen, num_counters(t.counter, t.rows, t.cols), frozen_host_.begin() + (long)counter_offset_[i]);
  }
  if (any_frozen) be_.copy(frozen_.data(), frozen_host_.data(), frozen_host_.size());
  const AdamWConfig& c = config_;
  for (size_t i = 0; i < tensors_.size(); i++) {
    const AdamTensor& t = tensors_[i];
    const size_t s = state_offset_[i], k = counter_offset_[i];
    be_.adamw_update(t.param, m_.data() + s, v_.data() + s, t.grad, counters_.data() + k,
                     t.frozen ? frozen_.data() + k : nullptr, t.rows, t.cols, t.counter, lr * t.lr_scale, c.beta1,
                     c.beta2, c.eps, c.weight_decay);
  }
}

int AdamW::index_of(const std::string& name) const {
  for (size_t i = 0; i < tensors_.size(); i++)
    if (tensors_[i].name == name) return (int)i;
  return -1;
}

void AdamW::reset_vectors(int p, int begin, int end, bool moments, bool counter) {
  if (p < 0 || p >= (int)tensors_.size())
    throw Error("AdamW::reset_vectors: parameter index " + std::to_string(p) +
                " is outside [0, " + std::to_string(tensors_.size()) + ")");
  const AdamTensor& t = tensors_[p];
  const int nvec = num_counters(t.counter, t.rows, t.cols);
  if (begin < 0 || begin > end || end > nvec)
    throw Error("AdamW::reset_vectors: parameter '" + t.name + "' (" +
                counter_name(t.counter) + ", " + std::to_string(nvec) +
                " vectors): bad range [" + std::to_string(begin) + ", " +
                std::to_string(end) + ")");
  if (end == begin) return;
  if (counter) be_.zero(counters_.data() + counter_offset_[p] + begin, (end - begin) * sizeof(int64_t));
  if (!moments) return;
  const size_t C = t.cols, row_bytes = C * sizeof(float);
  for (float* x : {m_.data() + state_offset_[p], v_.data() + state_offset_[p]}) {
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
  if (p < 0 || p >= (int)tensors_.size())
    throw Error("AdamW::counter: parameter index " + std::to_string(p) +
                " is outside [0, " + std::to_string(tensors_.size()) + ")");
  const AdamTensor& t = tensors_[p];
  if (vector < 0 || vector >= num_counters(t.counter, t.rows, t.cols))
    throw Error("AdamW::counter: parameter '" + t.name + "' (" +
                counter_name(t.counter) + ") has no vector " + std::to_string(vector));
  int64_t k = 0;
  be_.copy_and_wait(&k, counters_.data() + counter_offset_[p] + vector, sizeof k);
  return k;
}

namespace {

template <class T>
std::vector<T> slice_to_host(const Buffer<T>& b, size_t offset, size_t n) {
  std::vector<T> out(n);
  b.backend().copy_and_wait(out.data(), b.data() + offset, n * sizeof(T));
  return out;
}

}  // namespace

std::vector<float> AdamW::m(int p) const { return slice_to_host(m_, state_offset_.at(p), tensors_.at(p).numel()); }
std::vector<float> AdamW::v(int p) const { return slice_to_host(v_, state_offset_.at(p), tensors_.at(p).numel()); }
std::vector<int64_t> AdamW::counters(int p) const {
  const AdamTensor& t = tensors_.at(p);
  return slice_to_host(counters_, counter_offset_.at(p), num_counters(t.counter, t.rows, t.cols));
}

void AdamW::set_state(int p, const std::vector<float>& m, const std::vector<float>& v,
                      const std::vector<int64_t>& counters, const std::string& where) {
  const AdamTensor& t = tensors_.at(p);
  const size_t nc = num_counters(t.counter, t.rows, t.cols);
  if (m.size() != t.numel() || v.size() != t.numel() || counters.size() != nc)
    throw Error(where + ": optimizer state of '" + t.name + "' has " + std::to_string(m.size()) +
                " moments and " + std::to_string(counters.size()) + " step counters, this model needs " +
                std::to_string(t.numel()) + " and " + std::to_string(nc));
  // Values a run can produce: finite moments, exp_avg_sq >= 0 (a negative one
  // would make every later step NaN), step counts >= 0.
  for (size_t i = 0; i < m.size(); i++)
    if (!std::isfinite(m[i]) || !std::isfinite(v[i]) || v[i] < 0)
      throw Error(where + ": optimizer state of '" + t.name + "' entry " + std::to_string(i) + " is invalid (exp_avg " +
                  std::to_string(m[i]) + ", exp_avg_sq " + std::to_string(v[i]) + ")");
  for (size_t i = 0; i < nc; i++)
    if (counters[i] < 0)
      throw Error(where + ": optimizer step count of '" + t.name + "' is negative (" + std::to_string(counters[i]) + ")");
  be_.copy(m_.data() + state_offset_[p], m.data(), m.size() * sizeof(float));
  be_.copy(v_.data() + state_offset_[p], v.data(), v.size() * sizeof(float));
  be_.copy_and_wait(counters_.data() + counter_offset_[p], counters.data(), nc * sizeof(int64_t));
}

}  // namespace switchlora
