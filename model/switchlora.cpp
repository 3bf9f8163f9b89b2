#include "model/switchlora.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "engine/rng.h"
#include "model/lora.h"

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
  // interval(t) only grows with t, so checking t = 0 checks every step. Two
  // warm-up periods must fit in one interval, since A and B each freeze the other.
  const double first = switch_interval(o, 0);
  if (first < 2.0 * o.adam_warm_step)
    throw Error("switch interval " + std::to_string(first) + " (--switch_lora_interval " +
                std::to_string(o.switch_lora_interval) + ") is less than 2 x --adam_warm_step " +
                std::to_string(o.adam_warm_step));
}

namespace {

// Each adapted layer's pools: P = min(in, out) vectors for A and for B,
// U(+-sqrt(3) sigma) with SwitchLoRA's init std.
std::vector<PoolShape> pool_shapes(Llama& model) {
  std::vector<PoolShape> out;
  for (const Linear* l : model.linears()) {
    if (l->r == 0) throw Error("--switch_lora needs LoRA adapters (--lora_rank > 0)");
    out.push_back({l->name, l->in, l->out, std::sqrt(3.0f) * switchlora_sigma_A(l->out, l->in, l->r),
                   std::sqrt(3.0f) * switchlora_sigma_B(l->out, l->in, l->r)});
  }
  return out;
}

// The rows c, c+1, ..., c+k-1 (mod r) as at most two runs: f(slot, position, length).
template <class F>
void for_each_run(int c, int k, int r, F f) {
  const int first = std::min(k, r - c);
  if (first > 0) f(c, 0, first);
  if (k > first) f(0, first, k - first);
}

// C (M, N) += alpha op(A) B in fp32 whatever the training precision: a
// switch must keep W + s B A to fp32 rounding.
void exact_matmul(Backend& be, float* C, const float* A, const float* B, int M, int N, int K, bool transA,
                  float alpha) {
  be.gemm(C, A, B, M, N, K, transA, false, alpha, 1.0f, Precision::kFp32);
}

}  // namespace

// The options are validated before the pools are allocated (the comma
// operator runs the check first), so bad flags cost no memory.
SwitchLora::SwitchLora(Llama& model, const SwitchOptions& opts)
    : opts_((validate_switch_options(opts), opts)),
      be_(model.be),
      pools_(model.be, pool_shapes(model), opts.offload_candidates, opts.seed) {
  std::vector<Linear*> lins = model.linears();
  int widest = 0;
  for (size_t li = 0; li < lins.size(); li++) {
    Linear& l = *lins[li];
    const int r = l.r, P = std::min(l.in, l.out);
    widest = std::max({widest, l.in, l.out});
    SwitchLayer L;
    L.lin = &l;
    L.pool = P;
    L.cand_A = pools_.vector((int)li, false, 0);
    L.cand_B = pools_.vector((int)li, true, 0);
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

    // The adapters' one init: A[i, :] = cand_A[held_A[i]], B[:, i] = cand_B[held_B[i]],
    // then W = W0 - s B A so that W + s B A = W0.
    for (int i = 0; i < r; i++) {
      be_.copy(l.A->data + (size_t)i * l.in, pools_.vector((int)li, false, L.held_A[i]), l.in * sizeof(float));
      be_.copy_2d(l.B->data + i, r * sizeof(float), pools_.vector((int)li, true, L.held_B[i]), sizeof(float),
                  sizeof(float), l.out);
    }
    merge_adapter(be_, l, -1.0f);
    layers_.push_back(L);
  }
  gather_ = Buffer<float>(be_, (size_t)widest * (lins.empty() ? 1 : lins[0]->r));
  be_.synchronize();
}

// With thaw_restarts_bias_correction the optimizer reads the frozen masks
// and skips those vectors; otherwise (the authors' rule) it updates them with
// their zeroed gradients, counting the steps.
void SwitchLora::attach(std::vector<AdamTensor>& params) {
  const bool skip = opts_.thaw_restarts_bias_correction;
  for (SwitchLayer& L : layers_) {
    for (int i = 0; i < (int)params.size(); i++) {
      if (params[i].name == L.lin->A->name) {
        params[i].frozen = skip ? L.mask_A.data() : nullptr;
        L.optim_A = i;
      }
      if (params[i].name == L.lin->B->name) {
        params[i].frozen = skip ? L.mask_B.data() : nullptr;
        L.optim_B = i;
      }
    }
    SL_CHECK(L.optim_A >= 0 && L.optim_B >= 0, "adapter of " + L.lin->name + " not among the optimizer's params");
  }
}

// rate(t) = max(0.3^{(t+1)/D}, 1e-8)                 (exponential)
// rate(t) = 1 - 1 / (1 + exp(-(10/D)(t - D)))        (Z)
// D = switch_lora_descent_rate * num_training_steps
double switch_rate(const SwitchOptions& o, int t) {
  const double D = (double)o.switch_lora_descent_rate * o.num_training_steps;
  double value;
  if (o.switch_descend_type == "Z") value = 1.0 - 1.0 / (1.0 + std::exp(-(10.0 / D) * (t - D)));
  else value = std::pow(0.3, (t + 1) / D);
  return std::max(value, 1e-8);
}

double switch_interval(const SwitchOptions& o, int t) {
  if (o.fix_switch_lora_interval) return o.switch_lora_interval;
  return o.switch_lora_interval / switch_rate(o, t);
}

int SwitchLora::planned_switches(int t, int layer) const {
  const double k = layers_[layer].lin->r / interval(t);
  const int whole = (int)k;
  const double u = uniform01(opts_.seed, switch_stream(t, layer, kRoundK), 0);
  return whole + (u < k - whole ? 1 : 0);
}

// Switch the k rows S = {c, ..., c+k-1} (mod r) of A, c = the first move's
// slot, to the staged candidates C (k, in):
//   W += s B[:, S] (A[S, :] - C)       keeps W + s B A unchanged
//   outgoing = A[S, :]                 written back to the pool after the step
//   A[S, :] = C;  freeze B[:, S] and reset its Adam state; A keeps its own
void SwitchLora::switch_A_rows(SwitchLayer& L, const SwitchPlan& p, size_t first, int k, AdamW& opt) {
  Linear& l = *L.lin;
  const int r = l.r, in = l.in, out = l.out;
  float *C = pools_.incoming(first), *A_S = pools_.outgoing(first), *B_S = gather_.data();  // (k, in) (k, in) (out, k)
  const size_t row = in * sizeof(float);
  for_each_run(p.moves[first].slot, k, r, [&](int slot, int pos, int len) {
    be_.copy(A_S + (size_t)pos * in, l.A->data + (size_t)slot * in, len * row);
    be_.copy_2d(B_S + pos, k * sizeof(float), l.B->data + slot, r * sizeof(float), len * sizeof(float), out);
  });
  pools_.stage_redraws(p, first, k);
  exact_matmul(be_, l.W->data, B_S, A_S, out, in, k, false, l.s);   // W += s B_S A_S
  exact_matmul(be_, l.W->data, B_S, C, out, in, k, false, -l.s);    // W -= s B_S C
  for_each_run(p.moves[first].slot, k, r, [&](int slot, int pos, int len) {
    be_.copy(l.A->data + (size_t)slot * in, C + (size_t)pos * in, len * row);
  });
  for (int j = 0; j < k; j++) {
    const SwitchMove& m = p.moves[first + j];
    L.held_A[m.slot] = m.cand;
    L.frozen_B[m.slot] = opts_.adam_warm_step;
    opt.reset_vectors(L.optim_B, m.slot, m.slot + 1, !opts_.remain_switch_state, reset_counter());
  }
}

// Switch the k columns S of B to the staged candidates C (k, out), one row
// per column:
//   W += s (B[:, S] - C^T) A[S, :]
//   outgoing = B[:, S]^T;  B[:, S] = C^T;  freeze A[S, :] and reset its Adam state
void SwitchLora::switch_B_columns(SwitchLayer& L, const SwitchPlan& p, size_t first, int k, AdamW& opt) {
  Linear& l = *L.lin;
  const int r = l.r, in = l.in, out = l.out;
  float *C = pools_.incoming(first), *B_S = pools_.outgoing(first), *A_S = gather_.data();  // (k, out) (k, out) (k, in)
  const size_t f = sizeof(float);
  for_each_run(p.moves[first].slot, k, r, [&](int slot, int pos, int len) {
    be_.copy(A_S + (size_t)pos * in, l.A->data + (size_t)slot * in, len * in * f);
  });
  for (int j = 0; j < k; j++)  // column slot of B (out, r) -> row j of B_S
    be_.copy_2d(B_S + (size_t)j * out, f, l.B->data + p.moves[first + j].slot, r * f, f, out);
  pools_.stage_redraws(p, first, k);
  exact_matmul(be_, l.W->data, B_S, A_S, out, in, k, true, l.s);   // W += s B_S^T A_S
  exact_matmul(be_, l.W->data, C, A_S, out, in, k, true, -l.s);    // W -= s C^T A_S
  for (int j = 0; j < k; j++) {
    const SwitchMove& m = p.moves[first + j];
    be_.copy_2d(l.B->data + m.slot, r * f, C + (size_t)j * out, f, f, out);
    L.held_B[m.slot] = m.cand;
    L.frozen_A[m.slot] = opts_.adam_warm_step;
    opt.reset_vectors(L.optim_A, m.slot, m.slot + 1, !opts_.remain_switch_state, reset_counter());
  }
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

void SwitchLora::prefetch(int t) {
  next_ = plan(t);
  pools_.prefetch(next_);
}

int SwitchLora::switch_step(int t, AdamW& opt) {
  if (next_.step != t) prefetch(t);
  const SwitchPlan p = std::move(next_);
  next_ = SwitchPlan();
  // The candidates have arrived, and the last write-backs have left the staging.
  be_.main_waits_for_side();
  int switched = 0;
  size_t first = 0;  // the layer's first move: its k A rows, then its k B columns
  for (int li = 0; li < (int)layers_.size(); li++) {
    SwitchLayer& L = layers_[li];
    const int k = p.k[li];
    if (k > 0) {
      switch_A_rows(L, p, first, k, opt);
      switch_B_columns(L, p, first + k, k, opt);
    }
    first += 2 * (size_t)k;
    L.cursor_A = mod(L.cursor_A + k, L.lin->r);
    L.cursor_B = mod(L.cursor_B + k, L.lin->r);
    refresh_masks(L);
    switched += 2 * k;
  }
  pools_.write_back(p);
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

// Every value is checked before it is used: a held index outside the pool
// or a cursor outside [0, r) would read and write outside the pools' memory.
void SwitchLora::set_state(const nlohmann::json& j) {
  auto fail = [](const std::string& what) { throw Error("SwitchLoRA state: " + what); };
  if (!j.is_object() || !j.contains("layers") || !j["layers"].is_array()) fail("no \"layers\" list");
  const nlohmann::json& layers = j["layers"];
  if (layers.size() != layers_.size())
    fail(std::to_string(layers.size()) + " layers, this model has " + std::to_string(layers_.size()));
  // Read and check everything first, then assign (all or nothing). The
  // layers themselves stay put: the optimizer points at their masks.
  struct Read {
    std::vector<int> held_A, held_B, frozen_A, frozen_B;
    int cursor_A, cursor_B;
  };
  std::vector<Read> next(layers_.size());
  for (size_t i = 0; i < layers_.size(); i++) {
    const SwitchLayer& L = layers_[i];
    Read& R = next[i];
    const nlohmann::json& s = layers[i];
    const std::string where = L.lin->name + ": ";
    const int r = L.lin->r;
    if (!s.is_object() || s.value("name", "") != L.lin->name)
      fail("layer " + std::to_string(i) + " is not " + L.lin->name);
    // A list of r integers, each in [lo, hi].
    auto ints = [&](const char* key, int lo, int hi) {
      if (!s.contains(key) || !s[key].is_array() || s[key].size() != (size_t)r)
        fail(where + key + " must be a list of r = " + std::to_string(r) + " integers");
      std::vector<int> v;
      for (const nlohmann::json& x : s[key]) {
        if (!x.is_number_integer() || x.get<int64_t>() < lo || x.get<int64_t>() > hi)
          fail(where + key + " holds " + x.dump() + ", outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
        v.push_back(x.get<int>());
      }
      return v;
    };
    auto cursor = [&](const char* key) {
      if (!s.contains(key) || !s[key].is_number_integer() || s[key].get<int64_t>() < 0 || s[key].get<int64_t>() >= r)
        fail(where + key + " must be an integer in [0, r = " + std::to_string(r) + ")");
      return s[key].get<int>();
    };
    R.held_A = ints("held_A", 0, L.pool - 1);
    R.held_B = ints("held_B", 0, L.pool - 1);
    R.frozen_A = ints("frozen_A", 0, opts_.adam_warm_step);
    R.frozen_B = ints("frozen_B", 0, opts_.adam_warm_step);
    R.cursor_A = cursor("cursor_A");
    R.cursor_B = cursor("cursor_B");
  }
  for (size_t i = 0; i < layers_.size(); i++) {
    SwitchLayer& L = layers_[i];
    Read& R = next[i];
    L.held_A = std::move(R.held_A), L.held_B = std::move(R.held_B);
    L.frozen_A = std::move(R.frozen_A), L.frozen_B = std::move(R.frozen_B);
    L.cursor_A = R.cursor_A, L.cursor_B = R.cursor_B;
    refresh_masks(L);
  }
  next_ = SwitchPlan();  // planned from the old state
}

}  // namespace switchlora
