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
  widest_ = (size_t)widest;
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
    be_.copy_and_wait(L.cand_A, init.data(), nA * sizeof(float));  // init is reused below
#pragma omp parallel for
    for (int64_t i = 0; i < nB; i++) init[i] = bB * (2.0f * uniform01(opts_.seed, sB, i) - 1.0f);
    be_.copy_and_wait(L.cand_B, init.data(), nB * sizeof(float));

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

void SwitchLora::attach(std::vector<AdamTensor>& params) {
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

// Switch row m.slot of A to candidate c (in backend memory):
//   W += s B[:, slot] (A[slot, :] - c)       keeps W + s B A unchanged
//   old = A[slot, :]                          written back to cand_A[m.old] later
//   A[slot, :] = c;  freeze B[:, slot] and reset its Adam state
void SwitchLora::switch_A(SwitchLayer& L, const SwitchMove& m, const float* c, float* old, AdamW& opt) {
  Linear& l = *L.lin;
  const int in = l.in;
  float* a = l.A->data + (size_t)m.slot * in;
  be_.switch_A_update(l.W->data, l.B->data, l.A->data, c, l.s, m.slot, l.out, in, l.r);
  copy_row(old, a, in);
  copy_row(a, c, in);
  L.held_A[m.slot] = m.cand;
  L.frozen_B[m.slot] = opts_.adam_warm_step;
  opt.reset_vectors(L.optim_B, m.slot, m.slot + 1, !opts_.remain_switch_state, !opts_.remain_switch_step_state);
}

// Switch column m.slot of B to candidate c:
//   W += s (B[:, slot] - c) A[slot, :]
//   old = B[:, slot];  B[:, slot] = c;  freeze A[slot, :], reset its Adam state
void SwitchLora::switch_B(SwitchLayer& L, const SwitchMove& m, const float* c, float* old, AdamW& opt) {
  Linear& l = *L.lin;
  const int out = l.out, r = l.r;
  be_.switch_B_update(l.W->data, l.B->data, l.A->data, c, l.s, m.slot, out, l.in, r);
  copy_from_column(old, l.B->data, m.slot, r, out);
  copy_into_column(l.B->data, m.slot, r, c, out);
  L.held_B[m.slot] = m.cand;
  L.frozen_A[m.slot] = opts_.adam_warm_step;
  opt.reset_vectors(L.optim_A, m.slot, m.slot + 1, !opts_.remain_switch_state, !opts_.remain_switch_step_state);
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
// slot holds. The slot's own old candidate is allowed (c is fetched before
// anything is written back); entries held by other slots, frozen or about to
// be switched, are not, so a write-back never lands on a vector someone holds.
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

// The decisions of step t, made on copies of the host state, in the order
// switch_step applies them: per layer, A's k rows, then B's k columns.
// Nothing moves yet, so prefetch() can fetch the candidates while the step's
// forward and backward run.
SwitchPlan SwitchLora::plan(int t) const {
  SwitchPlan p;
  p.step = t;
  for (int li = 0; li < (int)layers_.size(); li++) {
    const SwitchLayer& L = layers_[li];
    const int r = L.lin->r, P = L.pool;
    int k = planned_switches(t, li);
    // Cap k so that neither cursor walks onto a frozen slot or past the other.
    const int frozen_A = (int)std::count_if(L.frozen_A.begin(), L.frozen_A.end(), [](int f) { return f > 0; });
    const int frozen_B = (int)std::count_if(L.frozen_B.begin(), L.frozen_B.end(), [](int f) { return f > 0; });
    k = std::min({k, mod(L.cursor_A - frozen_A - L.cursor_B, r), mod(L.cursor_B - frozen_B - L.cursor_A, r)});
    p.k.push_back(std::max(k, 0));
    // The k slots from the cursor on; slot i takes candidate held[i-1] + 1
    // (round robin over the pool), or a random free one (discontinuous).
    std::vector<int> held[2] = {L.held_A, L.held_B}, frozen[2] = {L.frozen_A, L.frozen_B};
    const int cursor[2] = {L.cursor_A, L.cursor_B};
    for (int b = 0; b < 2; b++) {
      const size_t first = p.moves.size();
      for (int j = 0; j < k; j++) {
        const int slot = mod(cursor[b] + j, r);
        SL_CHECK(frozen[b][slot] == 0, std::string("switching a frozen ") + (b ? "B column" : "A row") +
                                           " in " + L.lin->name);
        SwitchMove m{li, b == 1, slot, 0, held[b][slot], -1};
        m.cand = opts_.discontinuous_switch
                     ? draw_candidate(L, held[b], slot, hash64(switch_stream(t, li, b ? kDrawB : kDrawA), j, 0))
                     : (held[b][mod(slot - 1, r)] + 1) % P;
        // A vector written back earlier in this step (discontinuous mode
        // only: round robin never takes what a slot held this step) comes
        // from that move, not from the pool, where it has not landed yet.
        for (size_t i = first; i < p.moves.size(); i++)
          if (p.moves[i].old == m.cand) m.from = (int)i;
        held[b][slot] = m.cand;
        frozen[1 - b][slot] = opts_.adam_warm_step;  // the counterpart, as switch_A/B will
        p.moves.push_back(m);
      }
    }
  }
  return p;
}

// Pool vector `index` of layer li: A's rows (in) or B's columns (out).
float* SwitchLora::pool_vector(int li, bool B, int index) {
  const SwitchLayer& L = layers_[li];
  return B ? L.cand_B + (size_t)index * L.lin->out : L.cand_A + (size_t)index * L.lin->in;
}

void SwitchLora::prefetch(int t) {
  next_ = plan(t);
  const size_t need = std::max<size_t>(1, next_.moves.size()) * widest_;
  if (incoming_.size() < need) {
    be_.synchronize();  // the old staging may still be in use
    incoming_ = Buffer<float>(be_, need);
    outgoing_ = Buffer<float>(be_, need);
  }
  // The last step's switches may still be reading the staging.
  be_.side_waits_for_main();
  for (size_t i = 0; i < next_.moves.size(); i++) {
    const SwitchMove& m = next_.moves[i];
    if (m.from >= 0) continue;
    const Linear& l = *layers_[m.layer].lin;
    be_.copy_side(incoming_.data() + i * widest_, pool_vector(m.layer, m.B, m.cand),
                  (m.B ? l.out : l.in) * sizeof(float));
  }
}

int SwitchLora::switch_step(int t, AdamW& opt) {
  if (next_.step != t) prefetch(t);
  const SwitchPlan p = std::move(next_);
  next_ = SwitchPlan();
  // The candidates have arrived, and the last write-backs have left `outgoing_`.
  be_.main_waits_for_side();
  for (size_t i = 0; i < p.moves.size(); i++) {
    const SwitchMove& m = p.moves[i];
    const float* c = m.from >= 0 ? outgoing_.data() + m.from * widest_ : incoming_.data() + i * widest_;
    float* old = outgoing_.data() + i * widest_;
    if (m.B) switch_B(layers_[m.layer], m, c, old, opt);
    else switch_A(layers_[m.layer], m, c, old, opt);
  }
  int switched = 0;
  for (int li = 0; li < (int)layers_.size(); li++) {
    SwitchLayer& L = layers_[li];
    L.cursor_A = mod(L.cursor_A + p.k[li], L.lin->r);
    L.cursor_B = mod(L.cursor_B + p.k[li], L.lin->r);
    refresh_masks(L);
    switched += 2 * p.k[li];
  }
  // The trained vectors go back to their pool slots on the side queue, once
  // the switches above have copied them out.
  be_.side_waits_for_main();
  for (size_t i = 0; i < p.moves.size(); i++) {
    const SwitchMove& m = p.moves[i];
    const Linear& l = *layers_[m.layer].lin;
    be_.copy_side(pool_vector(m.layer, m.B, m.old), outgoing_.data() + i * widest_,
                  (m.B ? l.out : l.in) * sizeof(float));
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
  next_ = SwitchPlan();  // a plan made before this step ended is stale
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
  next_ = SwitchPlan();  // planned from the old state
}

std::vector<float> SwitchLora::candidates_host() const {
  be_.synchronize();  // write-backs still on their way to the pool
  return candidates_.to_host();
}

void SwitchLora::set_candidates(const std::vector<float>& values) {
  be_.synchronize();  // a prefetch may still be reading the pool
  candidates_.from_host(values);
  next_ = SwitchPlan();
}

}  // namespace switchlora
