#include "model/switchlora.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "engine/rng.h"

namespace switchlora {

namespace {

int mod(int a, int r) { return ((a % r) + r) % r; }

// One random stream per (step, layer, purpose): every rank draws the same
// numbers with no communication, whatever else it has drawn before.
uint64_t switch_stream(int t, int layer, int purpose) {
  return hash64(kStreamSwitch, (uint64_t)t, (uint64_t)layer * 4 + purpose);
}

enum { kRoundK = 0, kDrawA = 1, kDrawB = 2 };

}  // namespace

void validate_switch_options(const SwitchOptions& o) {
  if (o.switch_lora_interval <= 0)
    throw Error("--switch_lora_interval must be > 0, got " + std::to_string(o.switch_lora_interval));
  if (!(o.switch_lora_descent_rate > 0))
    throw Error("--switch_lora_descent_rate must be > 0, got " + std::to_string(o.switch_lora_descent_rate));
  if (o.adam_warm_step < 0)
    throw Error("--adam_warm_step must be >= 0 (0: no freezing), got " + std::to_string(o.adam_warm_step));
  if (o.switch_descend_type != "exponential" && o.switch_descend_type != "Z")
    throw Error("--switch_descend_type must be exponential or Z, got \"" + o.switch_descend_type + "\"");
}

SwitchLora::SwitchLora(Llama& model, const SwitchOptions& opts) : opts_(opts), be_(model.be) {
  validate_switch_options(opts_);
  // interval(t) only grows with t, so checking t = 0 checks every step. Two
  // warm-up periods must fit in one interval, since A and B each freeze the other.
  if (interval(0) < 2.0 * opts_.adam_warm_step)
    throw Error("switch interval " + std::to_string(interval(0)) + " (--switch_lora_interval " +
                std::to_string(opts_.switch_lora_interval) + ") is less than 2 x --adam_warm_step " +
                std::to_string(opts_.adam_warm_step));
  std::vector<Linear*> lins = model.linears();
  if (lins.empty() || lins[0]->r == 0) throw Error("--switch_lora needs LoRA adapters (--lora_rank > 0)");

  // Plan the pools in one buffer: per layer P rows for A, P columns for B.
  size_t total = 0;
  int widest = 0;
  for (Linear* l : lins) {
    SwitchLayer L;
    L.lin = l;
    L.pool = std::min(l->in, l->out);
    layers_.push_back(L);
    total += (size_t)L.pool * (l->in + l->out);
    widest = std::max({widest, l->in, l->out});
  }
  candidates_ = Buffer<float>(be_, total, opts_.offload_candidates ? Buffer<float>::kHost : Buffer<float>::kBackend);
  c_ = Buffer<float>(be_, widest);
  float* p = candidates_.data();
  for (size_t li = 0; li < layers_.size(); li++) {
    SwitchLayer& L = layers_[li];
    Linear& l = *L.lin;
    const int r = l.r, P = L.pool;
    L.cand_A = p;
    p += (size_t)P * l.in;
    L.cand_B = p;
    p += (size_t)P * l.out;
    // Candidates ~ U(+-sqrt(3) sigma): the std of SwitchLoRA's init.
    const float bA = std::sqrt(3.0f) * switchlora_sigma_A(l.out, l.in, r);
    const float bB = std::sqrt(3.0f) * switchlora_sigma_B(l.out, l.in, r);
    const uint64_t sA = (kStreamCandidates << 32) | (2 * li), sB = (kStreamCandidates << 32) | (2 * li + 1);
    const int64_t nA = (int64_t)P * l.in, nB = (int64_t)P * l.out;
    std::vector<float> init(std::max(nA, nB));
#pragma omp parallel for
    for (int64_t i = 0; i < nA; i++) init[i] = bA * (2.0f * uniform01(opts_.seed, sA, i) - 1.0f);
    be_.copy(L.cand_A, init.data(), nA * sizeof(float));
    be_.synchronize();  // init is reused below
#pragma omp parallel for
    for (int64_t i = 0; i < nB; i++) init[i] = bB * (2.0f * uniform01(opts_.seed, sB, i) - 1.0f);
    be_.copy(L.cand_B, init.data(), nB * sizeof(float));
    be_.synchronize();

    // A holds candidates P-r .. P-1; B the same list rotated by r/2, so the
    // cursors (A at 0, B at r/2) both take candidate 0 first and never meet.
    L.held_A.resize(r);
    L.held_B.resize(r);
    for (int i = 0; i < r; i++) {
      L.held_A[i] = P - r + i;
      L.held_B[i] = P - r + mod(i - r / 2, r);
    }
    L.cursor_A = 0;
    L.cursor_B = r / 2;
    L.frozen_A.assign(r, 0);
    L.frozen_B.assign(r, 0);
    L.mask_A.assign(r, 0);
    L.mask_B.assign(r, 0);

    // Replace the model's adapters by the pool vectors, keeping W + s B A = W0:
    // undo the model's W = W0 - s B A, then redo it with the new A, B.
    fold_adapter_into_weight(be_, l, +1.0f);
    for (int i = 0; i < r; i++) {
      copy_row(l.A->data + (size_t)i * l.in, L.cand_A + (size_t)L.held_A[i] * l.in, l.in);
      copy_into_column(l.B->data, i, r, L.cand_B + (size_t)L.held_B[i] * l.out, l.out);
    }
    fold_adapter_into_weight(be_, l, -1.0f);
  }
}

void SwitchLora::attach(std::vector<OptimParam>& params) {
  for (SwitchLayer& L : layers_) {
    for (int i = 0; i < (int)params.size(); i++) {
      if (params[i].name == L.lin->A->name) {
        params[i].frozen = L.mask_A.data();
        L.optim_A = i;
      }
      if (params[i].name == L.lin->B->name) {
        params[i].frozen = L.mask_B.data();
        L.optim_B = i;
      }
    }
    SL_CHECK(L.optim_A >= 0 && L.optim_B >= 0, "adapter of " + L.lin->name + " not among the optimizer's params");
  }
}

// rate(t) = max(0.3^{(t+1)/D}, 1e-8)                 (exponential)
// rate(t) = 1 - 1 / (1 + exp(-(10/D)(t - D)))        (Z)
// D = switch_lora_descent_rate * num_training_steps
double SwitchLora::rate(int t) const {
  const double D = (double)opts_.switch_lora_descent_rate * opts_.num_training_steps;
  double value;
  if (opts_.switch_descend_type == "Z") value = 1.0 - 1.0 / (1.0 + std::exp(-(10.0 / D) * (t - D)));
  else value = std::pow(0.3, (t + 1) / D);
  return std::max(value, 1e-8);
}

double SwitchLora::interval(int t) const {
  if (opts_.fix_switch_lora_interval) return opts_.switch_lora_interval;
  return opts_.switch_lora_interval / rate(t);
}

int SwitchLora::planned_switches(int t, int layer) const {
  const double k = layers_[layer].lin->r / interval(t);
  const int whole = (int)k;
  const double u = uniform01(opts_.seed, switch_stream(t, layer, kRoundK), 0);
  return whole + (u < k - whole ? 1 : 0);
}

// Switch row `slot` of A to candidate `cand`:
//   W += s B[:, slot] (A[slot, :] - c)       keeps W + s B A unchanged
//   cand_A[held] = A[slot, :]                 the trained row is kept for reuse
//   A[slot, :] = c;  freeze B[:, slot] and reset its Adam state
// Only vectors move between the pool and the backend: c in, the old row out.
void SwitchLora::switch_A(SwitchLayer& L, int slot, int cand, AdamW& opt) {
  Linear& l = *L.lin;
  const int in = l.in;
  float* a = l.A->data + (size_t)slot * in;
  // Copy c first: when cand is the slot's own old candidate (possible in
  // discontinuous mode) the write-back below overwrites it.
  copy_row(c_.data(), L.cand_A + (size_t)cand * in, in);
  be_.switch_A_update(l.W->data, l.B->data, l.A->data, c_.data(), l.s, slot, l.out, in, l.r);
  copy_row(L.cand_A + (size_t)L.held_A[slot] * in, a, in);
  copy_row(a, c_.data(), in);
  L.held_A[slot] = cand;
  L.frozen_B[slot] = opts_.adam_warm_step;
  opt.reset_vectors(L.optim_B, slot, slot + 1, !opts_.remain_switch_state, !opts_.remain_switch_step_state);
}

// Switch column `slot` of B to candidate `cand`:
//   W += s (B[:, slot] - c) A[slot, :]
//   cand_B[held] = B[:, slot];  B[:, slot] = c;  freeze A[slot, :], reset its Adam state
void SwitchLora::switch_B(SwitchLayer& L, int slot, int cand, AdamW& opt) {
  Linear& l = *L.lin;
  const int out = l.out, r = l.r;
  copy_row(c_.data(), L.cand_B + (size_t)cand * out, out);
  be_.switch_B_update(l.W->data, l.B->data, l.A->data, c_.data(), l.s, slot, out, l.in, r);
  copy_from_column(L.cand_B + (size_t)L.held_B[slot] * out, l.B->data, slot, r, out);
  copy_into_column(l.B->data, slot, r, c_.data(), out);
  L.held_B[slot] = cand;
  L.frozen_A[slot] = opts_.adam_warm_step;
  opt.reset_vectors(L.optim_A, slot, slot + 1, !opts_.remain_switch_state, !opts_.remain_switch_step_state);
}

void SwitchLora::copy_row(float* dst, const float* src, int n) { be_.copy(dst, src, n * sizeof(float)); }

// Column `col` of the row-major (n, r) matrix M, to or from a contiguous vector (n).
void SwitchLora::copy_into_column(float* M, int col, int r, const float* v, int n) {
  be_.copy_2d(M + col, r * sizeof(float), v, sizeof(float), sizeof(float), n);
}

void SwitchLora::copy_from_column(float* v, const float* M, int col, int r, int n) {
  be_.copy_2d(v, sizeof(float), M + col, r * sizeof(float), sizeof(float), n);
}

// Discontinuous mode: a uniform draw among the pool entries that no other
// slot holds. The slot's own old candidate is allowed (switch_A/B copy c
// before writing back); entries held by other slots, frozen or about to be
// switched, are not, so a write-back never lands on a vector someone holds.
int SwitchLora::draw_candidate(const SwitchLayer& L, const std::vector<int>& held, int slot,
                               uint64_t key) const {
  std::vector<uint8_t> taken(L.pool, 0);
  for (int i = 0; i < (int)held.size(); i++)
    if (i != slot) taken[held[i]] = 1;
  std::vector<int> free;
  for (int c = 0; c < L.pool; c++)
    if (!taken[c]) free.push_back(c);
  SL_CHECK(!free.empty(), "no free candidate in " + L.lin->name);
  return free[hash64(opts_.seed, key, 0) % free.size()];
}

void SwitchLora::refresh_masks(SwitchLayer& L) {
  for (int i = 0; i < L.lin->r; i++) {
    L.mask_A[i] = L.frozen_A[i] > 0;
    L.mask_B[i] = L.frozen_B[i] > 0;
  }
}

int SwitchLora::switch_step(int t, AdamW& opt) {
  int switched = 0;
  for (int li = 0; li < (int)layers_.size(); li++) {
    SwitchLayer& L = layers_[li];
    const int r = L.lin->r, P = L.pool;
    int k = planned_switches(t, li);
    // Cap k so that neither cursor walks onto a frozen slot or past the other.
    const int frozen_A = (int)std::count_if(L.frozen_A.begin(), L.frozen_A.end(), [](int f) { return f > 0; });
    const int frozen_B = (int)std::count_if(L.frozen_B.begin(), L.frozen_B.end(), [](int f) { return f > 0; });
    k = std::min({k, mod(L.cursor_A - frozen_A - L.cursor_B, r), mod(L.cursor_B - frozen_B - L.cursor_A, r)});
    if (k <= 0) continue;

    // The k slots from the cursor on; slot i takes candidate held[i-1] + 1
    // (round robin over the pool), or a random free one (discontinuous).
    auto next_candidate = [&](const std::vector<int>& held, int slot, int purpose, int j) {
      if (opts_.discontinuous_switch)
        return draw_candidate(L, held, slot, hash64(switch_stream(t, li, purpose), j, 0));
      return (held[mod(slot - 1, r)] + 1) % P;
    };
    for (int j = 0; j < k; j++) {
      const int slot = mod(L.cursor_A + j, r);
      SL_CHECK(L.frozen_A[slot] == 0, "switching a frozen A row in " + L.lin->name);
      switch_A(L, slot, next_candidate(L.held_A, slot, kDrawA, j), opt);
    }
    for (int j = 0; j < k; j++) {
      const int slot = mod(L.cursor_B + j, r);
      SL_CHECK(L.frozen_B[slot] == 0, "switching a frozen B column in " + L.lin->name);
      switch_B(L, slot, next_candidate(L.held_B, slot, kDrawB, j), opt);
    }
    L.cursor_A = mod(L.cursor_A + k, r);
    L.cursor_B = mod(L.cursor_B + k, r);
    refresh_masks(L);
    switched += 2 * k;
  }
  return switched;
}

void SwitchLora::zero_frozen_grads() {
  for (SwitchLayer& L : layers_) {
    Linear& l = *L.lin;
    const int r = l.r;
    for (int i = 0; i < r; i++) {
      if (L.mask_A[i]) be_.zero(l.A->grad + (size_t)i * l.in, l.in * sizeof(float));
      if (L.mask_B[i]) be_.zero_2d(l.B->grad + i, r * sizeof(float), sizeof(float), l.out);
    }
  }
}

void SwitchLora::end_step() {
  for (SwitchLayer& L : layers_) {
    for (int& f : L.frozen_A) f = std::max(0, f - 1);
    for (int& f : L.frozen_B) f = std::max(0, f - 1);
    refresh_masks(L);
  }
}

nlohmann::json SwitchLora::state() const {
  nlohmann::json layers = nlohmann::json::array();
  for (const SwitchLayer& L : layers_)
    layers.push_back({{"name", L.lin->name},
                      {"held_A", L.held_A},
                      {"held_B", L.held_B},
                      {"cursor_A", L.cursor_A},
                      {"cursor_B", L.cursor_B},
                      {"frozen_A", L.frozen_A},
                      {"frozen_B", L.frozen_B}});
  return {{"layers", layers}};
}

void SwitchLora::set_state(const nlohmann::json& j) {
  const nlohmann::json& layers = j.at("layers");
  SL_CHECK(layers.size() == layers_.size(), "SwitchLoRA state has a different number of layers");
  for (size_t i = 0; i < layers_.size(); i++) {
    SwitchLayer& L = layers_[i];
    const nlohmann::json& s = layers[i];
    L.held_A = s.at("held_A").get<std::vector<int>>();
    L.held_B = s.at("held_B").get<std::vector<int>>();
    L.cursor_A = s.at("cursor_A").get<int>();
    L.cursor_B = s.at("cursor_B").get<int>();
    L.frozen_A = s.at("frozen_A").get<std::vector<int>>();
    L.frozen_B = s.at("frozen_B").get<std::vector<int>>();
    refresh_masks(L);
  }
}

}  // namespace switchlora
