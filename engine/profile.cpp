#include "engine/profile.h"

#include <algorithm>

namespace switchlora {

void ProfilingBackend::phase(const char* name) {
  if (!on_) return;
  be_.synchronize();  // what the phase queued counts as the phase's
  const Clock::time_point t = now();
  const double total = std::chrono::duration<double>(t - mark_).count();
  if (phase_ == kModel) seconds_["host, between ops"] += total - in_ops_;
  else if (!phase_.empty()) seconds_[phase_] += total;
  phase_ = name;
  mark_ = t;
  in_ops_ = 0;
}

// A GEMM's layer kind from its shape: every product of a linear layer has
// two of its in, out and N = B T as its M, N, K, so a dimension equal to the
// LoRA rank, the vocabulary or the MLP width says which layer it is part of.
// (Where two sizes coincide, e.g. r = C, the first match wins.)
const char* ProfilingBackend::gemm_kind(int M, int N, int K) const {
  auto has = [&](int d) { return d > 0 && (M == d || N == d || K == d); };
  if (has(r_)) return "GEMM LoRA adapters";
  if (has(V_)) return "GEMM lm_head";
  if (has(I_)) return "GEMM mlp gate, up, down";
  if (has(C_)) return "GEMM attention q, k, v, o";
  return "GEMM other";
}

std::vector<std::pair<std::string, double>> ProfilingBackend::seconds() const {
  std::vector<std::pair<std::string, double>> out(seconds_.begin(), seconds_.end());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  return out;
}

}  // namespace switchlora
