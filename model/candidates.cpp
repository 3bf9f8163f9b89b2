#include "model/candidates.h"

#include "engine/error.h"
#include "engine/rng.h"

namespace switchlora {

CandidatePools::CandidatePools(Backend& be, std::vector<PoolShape> layers, bool offload, uint64_t seed)
    : be_(be), layers_(std::move(layers)) {
  size_t total = 0;
  for (const PoolShape& s : layers_) {
    start_.push_back(total);
    total += (size_t)s.pool() * (s.in + s.out);
  }
  pools_ = Buffer<float>(be_, total, offload ? Buffer<float>::kHost : Buffer<float>::kBackend);
  for (size_t li = 0; li < layers_.size(); li++) {
    const PoolShape& s = layers_[li];
    // Candidates ~ U(+-sqrt(3) sigma): the std of SwitchLoRA's init.
    const uint64_t sA = (kStreamCandidates << 32) | (2 * li), sB = (kStreamCandidates << 32) | (2 * li + 1);
    for (bool B : {false, true}) {
      const int64_t n = (int64_t)s.pool() * (B ? s.out : s.in);
      const float bound = B ? s.bound_B : s.bound_A;
      const uint64_t stream = B ? sB : sA;
      std::vector<float> init(n);
#pragma omp parallel for
      for (int64_t i = 0; i < n; i++) init[i] = bound * (2.0f * uniform01(seed, stream, i) - 1.0f);
      be_.copy_and_wait(vector((int)li, B, 0), init.data(), n * sizeof(float));
    }
  }
}

size_t CandidatePools::at(int li, bool B, int index) const {
  const PoolShape& s = layers_[li];
  return start_[li] + (B ? (size_t)s.pool() * s.in + (size_t)index * s.out : (size_t)index * s.in);
}

void CandidatePools::prefetch(const SwitchPlan& p) {
  offset_.clear();
  size_t need = 0;
  for (const SwitchMove& m : p.moves) {
    offset_.push_back(need);
    need += length(m);
  }
  if (incoming_.size() < need) {
    be_.synchronize();  // the old staging may still be in use
    incoming_ = Buffer<float>(be_, need);
    outgoing_ = Buffer<float>(be_, need);
  }
  // The last step's switches may still be reading the staging.
  be_.side_waits_for_main();
  for (size_t i = 0; i < p.moves.size(); i++) {
    const SwitchMove& m = p.moves[i];
    if (m.from >= 0) continue;  // not in the pool yet: stage_redraws
    be_.copy_side(incoming(i), vector(m.layer, m.B, m.cand), length(m) * sizeof(float));
  }
}

void CandidatePools::stage_redraws(const SwitchPlan& p, size_t first, size_t count) {
  for (size_t i = first; i < first + count; i++)
    if (p.moves[i].from >= 0) be_.copy(incoming(i), outgoing(p.moves[i].from), length(p.moves[i]) * sizeof(float));
}

void CandidatePools::write_back(const SwitchPlan& p) {
  // Once the switches queued so far have copied the trained vectors out.
  be_.side_waits_for_main();
  for (size_t i = 0; i < p.moves.size(); i++) {
    const SwitchMove& m = p.moves[i];
    be_.copy_side(vector(m.layer, m.B, m.old), outgoing(i), length(m) * sizeof(float));
  }
}

std::vector<float> CandidatePools::host(int li, bool B) const {
  const PoolShape& s = layers_[li];
  std::vector<float> out((size_t)s.pool() * (B ? s.out : s.in));
  be_.synchronize();  // write-backs still on their way to the pool
  be_.copy_and_wait(out.data(), pools_.data() + at(li, B, 0), out.size() * sizeof(float));
  return out;
}

void CandidatePools::set(int li, bool B, const std::vector<float>& values, const std::string& where) {
  const PoolShape& s = layers_[li];
  const size_t n = (size_t)s.pool() * (B ? s.out : s.in);
  if (values.size() != n)
    throw Error(where + ": candidates of " + s.name + (B ? " (B)" : " (A)") + " have " +
                std::to_string(values.size()) + " values, this model needs " + std::to_string(n));
  be_.synchronize();  // a prefetch may still be reading the pool
  be_.copy_and_wait(vector(li, B, 0), values.data(), n * sizeof(float));
}

std::vector<float> CandidatePools::all_host() const {
  be_.synchronize();
  return pools_.to_host();
}

}  // namespace switchlora
