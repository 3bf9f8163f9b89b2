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
// adam_warm_step optimizer steps (its gradient zeroed) and its Adam state is reset.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/candidates.h"
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
  bool remain_switch_state = false;       // keep the counterpart's moments and step counter (the authors')
  bool remain_switch_step_state = false;  // keep only its step counter
  // The authors' optimizer keeps counting a frozen vector's steps (its
  // gradient is zeroed, its reset moments stay 0, so it does not move) and
  // thaws at bias correction k = adam_warm_step + 1. true: the optimizer
  // skips frozen vectors entirely, so the bias correction restarts at k = 1.
  bool thaw_restarts_bias_correction = false;
  int num_training_steps = 1;
  uint64_t seed = 0;
  // The pools in the backend's host memory (pinned on the GPU: the paper's
  // offload), moving only the vectors being switched; false keeps them in
  // backend (device) memory. No effect on the CPU backend's results.
  bool offload_candidates = true;
};

// Throws switchlora::Error naming the flag for a bad option, or for an
// interval shorter than 2 x adam_warm_step.
void validate_switch_options(const SwitchOptions& o);

// rate(t) = max(0.3^{(t+1)/D}, 1e-8)                 (exponential)
// rate(t) = 1 - 1 / (1 + exp(-(10/D)(t - D)))        (Z)
// D = switch_lora_descent_rate * num_training_steps;
// interval(t) = switch_lora_interval / rate(t), or constant with
// fix_switch_lora_interval  (t 0-based).
double switch_rate(const SwitchOptions& o, int t);
double switch_interval(const SwitchOptions& o, int t);

// Per adapted layer: who holds what.
struct SwitchLayer {
  Linear* lin = nullptr;
  int pool = 0;                      // P = min(out, in) candidates per pool
  float* cand_A = nullptr;           // (P, in)  rows for A        } the layer's pools in
  float* cand_B = nullptr;           // (P, out) columns for B,    } CandidatePools (host or
                                     //          stored as rows    } backend memory)
  std::vector<int> held_A, held_B;   // (r) candidate slot each A row / B column came from
  int cursor_A = 0, cursor_B = 0;    // continuous mode: next slot to switch
  std::vector<int> frozen_A, frozen_B;  // (r) optimizer steps each vector stays frozen
  std::vector<uint8_t> mask_A, mask_B;  // (r) frozen_X > 0, read by the optimizer through a pointer: never reallocated
  int optim_A = -1, optim_B = -1;    // indices of A and B among the optimizer's tensors
};

class SwitchLora {
 public:
  // Builds the candidate pools, initialises the adapters (the one init they
  // get): A = the last r candidates, B = the same list rotated by r/2, and
  // W = W0 - s B A, so the model still computes W0.
  SwitchLora(Llama& model, const SwitchOptions& opts);

  // Finds A and B among the optimizer's tensors and, with
  // thaw_restarts_bias_correction, points them at the frozen masks; call once
  // with the AdamTensors before building the AdamW.
  void attach(std::vector<AdamTensor>& tensors);

  // switch_rate and switch_interval of this run's options.
  double rate(int t) const { return switch_rate(opts_, t); }
  double interval(int t) const { return switch_interval(opts_, t); }
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
  // every layer, each as one GEMM pair over the switched set, counterparts
  // frozen and their Adam state reset in opt; the switched-out vectors go
  // back to the pools on the side queue. Returns the number of vectors
  // switched (A rows + B columns, all layers).
  int switch_step(int t, AdamW& opt);
  // Zero the gradients of frozen vectors (and with thaw_restarts_bias_correction
  // the optimizer skips them too).
  void zero_frozen_grads();
  // One optimizer step has passed: frozen counts go down by one.
  void end_step();

  size_t num_candidates() const { return pools_.size(); }
  std::vector<SwitchLayer>& layers() { return layers_; }
  const std::vector<SwitchLayer>& layers() const { return layers_; }
  CandidatePools& pools() { return pools_; }
  const CandidatePools& pools() const { return pools_; }

  // Every pool on the host, for rank-sync hashes and tests.
  std::vector<float> candidates_host() const { return pools_.all_host(); }
  // Checkpoint: who holds what, as JSON (the pools are saved by name).
  nlohmann::json state() const;
  void set_state(const nlohmann::json& j);

 private:
  void switch_A_rows(SwitchLayer& L, const SwitchPlan& p, size_t first, int k, AdamW& opt);
  void switch_B_columns(SwitchLayer& L, const SwitchPlan& p, size_t first, int k, AdamW& opt);
  int draw_candidate(const SwitchLayer& L, const std::vector<int>& held, int slot,
                     uint64_t key) const;
  void refresh_masks(SwitchLayer& L);
  // Whether a switch resets its counterpart's step counter: not with
  // --remain_switch_state (it keeps everything, as the authors'), nor with
  // --remain_switch_step_state.
  bool reset_counter() const { return !opts_.remain_switch_state && !opts_.remain_switch_step_state; }

  SwitchOptions opts_;
  Backend& be_;
  std::vector<SwitchLayer> layers_;
  CandidatePools pools_;
  Buffer<float> gather_;      // (max(in, out), r): B[:, S] or A[S, :] for the switch GEMMs
  SwitchPlan next_;           // prefetched plan (step -1: none)
};

}  // namespace switchlora
