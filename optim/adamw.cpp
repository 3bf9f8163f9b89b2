// AdamW with per-tensor, per-row or per-column step counters (DESIGN §5).
//
// The bias corrections depend only on a vector's counter, so they are
// computed once per vector, in double as PyTorch does with its Python floats:
//   s = lr / (1 - b1^k)          c = 1 / sqrt(1 - b2^k)
// and the element loop only does float arithmetic the compiler can vectorise:
//   m = b1 m + (1 - b1) g        v = b2 v + (1 - b2) g^2
//   p = p - (lr wd p + s m / (sqrt(v) c + eps))
// PyTorch applies the decay and the Adam step as two roundings of p; folding
// them into one subtraction is the same update with one rounding less.
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

// Elements [0, n) that share one step size s and denominator scale c.
void adam_span(float* p, float* m, float* v, const float* g, size_t n, float b1,
               float b2, float eps, float lr_wd, float s, float c) {
  const float a1 = 1.0f - b1, a2 = 1.0f - b2;
#pragma omp simd
  for (size_t i = 0; i < n; i++) {
    float mi = b1 * m[i] + a1 * g[i];
    float vi = b2 * v[i] + a2 * g[i] * g[i];
    p[i] -= lr_wd * p[i] + s * mi / (std::sqrt(vi) * c + eps);
    m[i] = mi;
    v[i] = vi;
  }
}

// One row of a per-column tensor: column j has its own s[j], c[j]; a frozen
// column (live[j] == 0) writes back its old values, bit for bit. The select
// rather than a branch keeps the loop vectorisable.
void adam_row_per_column(float* p, float* m, float* v, const float* g, int n,
                         float b1, float b2, float eps, float lr_wd, const float* s,
                         const float* c, const uint8_t* live) {
  const float a1 = 1.0f - b1, a2 = 1.0f - b2;
#pragma omp simd
  for (int j = 0; j < n; j++) {
    float mi = b1 * m[j] + a1 * g[j];
    float vi = b2 * v[j] + a2 * g[j] * g[j];
    float pi = p[j] - (lr_wd * p[j] + s[j] * mi / (std::sqrt(vi) * c[j] + eps));
    p[j] = live[j] ? pi : p[j];
    m[j] = live[j] ? mi : m[j];
    v[j] = live[j] ? vi : v[j];
  }
}

}  // namespace

AdamW::AdamW(const AdamWConfig& config, std::vector<OptimParam> params, size_t numel)
    : config_(config), params_(std::move(params)), m_(numel, 0.0f), v_(numel, 0.0f) {
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
  counters_.assign(total, 0);
}

void AdamW::step(float* params, const float* grads, float lr) {
  const float b1 = config_.beta1, b2 = config_.beta2, eps = config_.eps;
  const float lr_wd = lr * config_.weight_decay;
  int max_vectors = 1;
  for (const OptimParam& t : params_) max_vectors = std::max(max_vectors, num_vectors(t));
  std::vector<float> s(max_vectors), c(max_vectors);
  std::vector<uint8_t> live(max_vectors);

  for (size_t ip = 0; ip < params_.size(); ip++) {
    const OptimParam& t = params_[ip];
    const int nvec = num_vectors(t);
    int64_t* k = &counters_[counter_offset_[ip]];
    // The counter goes up before the bias corrections, so the first step
    // uses k = 1 as in PyTorch.
    for (int i = 0; i < nvec; i++) {
      live[i] = !(t.frozen && t.frozen[i]);
      if (!live[i]) continue;
      k[i]++;
      s[i] = (float)(lr / (1.0 - std::pow((double)b1, (double)k[i])));
      c[i] = (float)(1.0 / std::sqrt(1.0 - std::pow((double)b2, (double)k[i])));
    }

    float* p = params + t.offset;
    float* m = m_.data() + t.offset;
    float* v = v_.data() + t.offset;
    const float* g = grads + t.offset;
    const int C = t.cols;
    switch (t.counter) {
      case StepCounter::kPerTensor:
      case StepCounter::kPerRow: {
        // A row is a contiguous span with one step size: per row, its own;
        // per tensor, the tensor's.
        const bool per_row = t.counter == StepCounter::kPerRow;
#pragma omp parallel for
        for (int r = 0; r < t.rows; r++) {
          const int i = per_row ? r : 0;
          if (!live[i]) continue;
          size_t o = (size_t)r * C;
          adam_span(p + o, m + o, v + o, g + o, C, b1, b2, eps, lr_wd, s[i], c[i]);
        }
        break;
      }
      case StepCounter::kPerColumn:
#pragma omp parallel for
        for (int r = 0; r < t.rows; r++) {
          size_t o = (size_t)r * C;
          adam_row_per_column(p + o, m + o, v + o, g + o, C, b1, b2, eps, lr_wd,
                              s.data(), c.data(), live.data());
        }
        break;
    }
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
  if (counter)
    std::fill(counters_.begin() + counter_offset_[p] + begin,
              counters_.begin() + counter_offset_[p] + end, 0);
  if (!moments) return;
  float* m = m_.data() + t.offset;
  float* v = v_.data() + t.offset;
  const size_t C = t.cols;
  switch (t.counter) {
    case StepCounter::kPerTensor:
      if (end > begin) {
        std::fill(m, m + t.rows * C, 0.0f);
        std::fill(v, v + t.rows * C, 0.0f);
      }
      break;
    case StepCounter::kPerRow:
      std::fill(m + begin * C, m + end * C, 0.0f);
      std::fill(v + begin * C, v + end * C, 0.0f);
      break;
    case StepCounter::kPerColumn:
      for (size_t r = 0; r < (size_t)t.rows; r++)
        for (int j = begin; j < end; j++) m[r * C + j] = v[r * C + j] = 0.0f;
      break;
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
  return counters_[counter_offset_[p] + vector];
}

}  // namespace switchlora
