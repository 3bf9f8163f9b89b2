// SwitchLoRA's candidate pools and the traffic of a step's switches
// (DESIGN §4: candidates never receive gradients and are never all-reduced;
// on the GPU they may live in pinned host memory and move only the switched
// vectors). model/switchlora.cpp decides what switches; this unit stores the
// vectors and moves them.
//
// Each adapted layer has P = min(in, out) candidate rows for A (length in)
// and P candidate columns for B (length out, stored as rows), all in one
// buffer: the backend's pinned host memory when offloaded, else backend
// memory. A step's switches (a SwitchPlan) are staged in two backend
// buffers, one packed row per move, so the moves of one layer and phase form
// a (k, length) matrix for the switch GEMMs:
//   incoming: the candidate each move brings in, copied from the pool on the
//             side queue while the step's forward and backward run (prefetch);
//   outgoing: the trained vector each move takes out, written back to its
//             pool slot on the side queue after the switches (write_back).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/backend.h"

namespace switchlora {

// One vector switch: layer `layer`'s A row (B = false) or B column `slot`
// takes pool vector `cand`, and its current vector goes back to pool slot
// `old`. from >= 0: the incoming vector is the one move `from` of the same
// step took out (it is not in the pool yet).
struct SwitchMove {
  int layer;
  bool B;
  int slot, cand, old;
  int from;
};

// The switches of one step, in order (per layer: k A rows, then k B
// columns), and each layer's k.
struct SwitchPlan {
  int step = -1;
  std::vector<SwitchMove> moves;
  std::vector<int> k;
};

// The shape of one layer's pools and the bounds of their uniform init.
struct PoolShape {
  std::string name;  // the layer's HF module name
  int in = 0, out = 0;
  float bound_A = 0, bound_B = 0;
  int pool() const { return in < out ? in : out; }
};

class CandidatePools {
 public:
  // Draws every candidate of layer li uniformly in +-bound from (seed, li).
  CandidatePools(Backend& be, std::vector<PoolShape> layers, bool offload, uint64_t seed);

  // Pool vector `index` of layer li: an A row (in) or a B column (out).
  float* vector(int layer, bool B, int index) { return pools_.data() + at(layer, B, index); }
  size_t size() const { return pools_.size(); }  // floats in all pools

  // Queues plan p's candidates into the incoming staging on the side queue.
  void prefetch(const SwitchPlan& p);
  // Staging of move i of the prefetched plan (backend memory, packed rows).
  float* incoming(size_t i) { return incoming_.data() + offset_[i]; }
  float* outgoing(size_t i) { return outgoing_.data() + offset_[i]; }
  // Move i's incoming is move `from`'s outgoing (a same-step redraw).
  void stage_redraws(const SwitchPlan& p, size_t first, size_t count);
  // Queues the outgoing vectors back to their pool slots on the side queue.
  void write_back(const SwitchPlan& p);

  // One layer's A or B pool on the host, for checkpoints: (P, in) or (P, out).
  std::vector<float> host(int layer, bool B) const;
  void set(int layer, bool B, const std::vector<float>& values, const std::string& where);
  std::vector<float> all_host() const;  // every pool, for rank-sync hashes

 private:
  size_t at(int layer, bool B, int index) const;  // offset of a pool vector
  size_t length(const SwitchMove& m) const { return m.B ? layers_[m.layer].out : layers_[m.layer].in; }

  Backend& be_;
  std::vector<PoolShape> layers_;
  std::vector<size_t> start_;  // where layer li's A pool starts; its B pool follows
  Buffer<float> pools_;        // never all-reduced
  Buffer<float> incoming_, outgoing_;
  std::vector<size_t> offset_;  // staging offset of each move of the prefetched plan
};

}  // namespace switchlora
