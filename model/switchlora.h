// SwitchLoRA (Zhou, Wang, Xu, arXiv 2406.06564), as DESIGN §4 describes the
// authors' public implementation. LoRA's A rows and B columns are swapped,
// a few at a time, with vectors from per-layer candidate pools, so that over
// training the adapters sweep many directions and W absorbs what they learnt:
//
//   switch row i of A to candidate c:     W += s B[:, i] (A[i, :] - c)
//   switch column j of B to candidate c:  W += s (B[:, j] - c) A[j, :]
//
// Either switch leaves W + s B A, and so the model's output, unchanged. The
// counterpart vector (B's column i, resp. A's row j) is frozen for
// adam_warm_step optimizer steps and its Adam state is reset.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/llama.h"
#include "optim/adamw.h"

namespace switchlora {

struct SwitchOptions {
  int switch_lora_interval = 40;
  float switch_lora_descent_rate = 0.1f;  // D = descent_rate * num_training_steps
  int adam_warm_step = 5;
  std::string switch_descend_type = "exponential";  // exponential | Z
  bool fix_switch_lora_interval = false;
  bool discontinuous_switch = false;
  bool remain_switch_state = false;       // keep the counterpart's moments
  bool remain_switch_step_state = false;  // keep the counterpart's step counter
  int num_training_steps = 1;
  uint64_t seed = 0;
  // The pools in the backend's host memory (pinned on the GPU: the paper's
  // offload), moving only the vectors being switched; false keeps them in
  // backend (device) memory. No effect on the CPU backend's results.
  bool offload_candidates = true;
};

// Throws switchlora::Error naming the flag for a bad option.
void validate_switch_options(const SwitchOptions& o);

// Per adapted layer: candidate pools and who holds what.
struct SwitchLayer {
  Linear* lin = nullptr;
  int pool = 0;                      // P = min(out, in) candidates per pool
  float* cand_A = nullptr;           // (P, in)  rows for A        } host or backend memory,
  float* cand_B = nullptr;           // (P, out) columns for B,    } see offload_candidates
                                     //          stored as rows
  std::vector<int> held_A, held_B;   // (r) candidate slot each A row / B column came from
  int cursor_A = 0, cursor_B = 0;    // continuous mode: next slot to switch
  std::vector<int> frozen_A, frozen_B;  // (r) optimizer steps each vector stays frozen
  std::vector<uint8_t> mask_A, mask_B;  // (r) frozen_X > 0, read by the optimizer
  int optim_A = -1, optim_B = -1;    // indices of A and B among the optimizer's params
};

// One vector switch: layer `layer`'s A row (B = false) or B column `slot`
// takes pool vector `cand`, and its current vector goes back to pool slot
// `old`. from >= 0: the incoming vector is the one move `from` of the same
// step wrote back (it is not in the pool yet).
struct SwitchMove {
  int layer;
  bool B;
  int slot, cand, old;
  int from;
};

// The switches of one step, in order, and each layer's k.
struct SwitchPlan {
  int step = -1;
  std::vector<SwitchMove> moves;
  std::vector<int> k;
};

class SwitchLora {
 public:
  // Builds the candidate pools (own buffer), puts A = the last r candidates
  // and B = the same list rotated by r/2, and sets W = W0 - s B A.
  SwitchLora(Llama& model, const SwitchOptions& opts);

  // Points the optimizer's A/B entries at the frozen masks; call once with
  // the AdamTensors before building the AdamW.
  void attach(std::vector<AdamTensor>& tensors);

  // rate(t) and interval(t) = switch_lora_interval / rate(t)  (t 0-based).
  double rate(int t) const;
  double interval(int t) const;
  // The number of vectors a layer should switch at step t, before the cap:
  // r / interval(t) with the fractional part rounded up with that probability,
  // drawn from (seed, t, layer).
  int planned_switches(int t, int layer) const;

  // Step t's decisions, from the current state (see SwitchPlan).
  SwitchPlan plan(int t) const;
  // Plans step t and starts fetching its candidates on the backend's side
  // queue, to overlap the step's forward and backward. Call any time after
  // step t-1's end_step(); switch_step(t) does it itself otherwise.
  void prefetch(int t);
  // Step t's switching (after clipping, before the optimizer): A then B for
  // every layer, counterparts frozen and their Adam state reset in opt; the
  // switched-out vectors go back to the pools on the side queue. Returns the
  // number of vectors switched (A rows + B columns, all layers).
  int switch_step(int t, AdamW& opt);
  // Zero the gradients of frozen vectors (the optimizer also skips them).
  void zero_frozen_grads();
  // One optimizer step has passed: frozen counts go down by one.
  void end_step();

  size_t num_candidates() const { return candidates_.size(); }
  std::vector<SwitchLayer>& layers() { return layers_; }

  // Checkpoint: candidates as a blob (copied to or from the host), the rest as JSON.
  std::vector<float> candidates_host() const;
  void set_candidates(const std::vector<float>& values);
  nlohmann::json state() const;
  void set_state(const nlohmann::json& j);

 private:
  void switch_A(SwitchLayer& L, const SwitchMove& m, const float* c, float* old, AdamW& opt);
  void switch_B(SwitchLayer& L, const SwitchMove& m, const float* c, float* old, AdamW& opt);
  float* pool_vector(int layer, bool B, int index);
  int draw_candidate(const SwitchLayer& L, const std::vector<int>& held, int slot,
                     uint64_t key) const;
  void refresh_masks(SwitchLayer& L);
  void copy_row(float* dst, const float* src, int n);
  void copy_into_column(float* M, int col, int r, const float* v, int n);
  void copy_from_column(float* v, const float* M, int col, int r, int n);

  SwitchOptions opts_;
  Backend& be_;
  Buffer<float> candidates_;  // every pool, one buffer (never all-reduced)
  // Backend staging, one row of widest_ floats per move of a plan: the
  // incoming candidates and the outgoing trained vectors.
  Buffer<float> incoming_, outgoing_;
  size_t widest_ = 0;         // max(in, out) over the layers
  SwitchPlan next_;           // prefetched plan (step -1: none)
  std::vector<SwitchLayer> layers_;
};

}  // namespace switchlora
