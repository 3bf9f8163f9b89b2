// ReLoRA (Lialin et al., "ReLoRA: High-Rank Training Through Low-Rank
// Updates"; DESIGN §6, as its public repo behaves): LoRA whose adapters are
// merged into W and restarted every `relora` steps, so that a sequence of
// low-rank updates adds up to a high-rank one:
//
//   merge (after update u, u - start = relora + 1, 2 relora + 1, ...):
//     W += s B A;   A ~ Kaiming-uniform (a = sqrt(5)), B = 0    (output unchanged)
//   optimizer reset (u - start = cycle_length + 1, ...): the adapters' Adam
//     moments pruned, never their step counts:
//     random:    each entry zeroed with probability p (the repo's default
//                reset is random pruning at p = 0.999)
//     magnitude: entries with |x| <= the p-quantile of |x| (per tensor) zeroed
//
// Usually with --scheduler cosine_restarts (optim/schedule.h) and started from
// a full-rank warm-up (--warmed_up_model). Not copied: its repo
// zero-initialises A as well as B when it keeps the original weights.
#pragma once
#include "train/method.h"

namespace switchlora {

struct ReLoraOptions {
  int relora = 0;                            // merge every N steps
  bool reset_optimizer_on_relora = true;     // = random pruning at 0.999
  float optimizer_random_pruning = 0.0f;     // p of the random reset
  float optimizer_magnitude_pruning = 0.0f;  // p of the magnitude reset
};

class ReLoraMethod : public Method {
 public:
  ReLoraMethod(Llama& model, const TrainOptions& o);

  // Merge and restart, then prune the adapters' optimizer state, when due.
  void after_update(int t) override;
  void metrics(nlohmann::json& m) const override;  // relora_merged, optimizer_reset (0 or 1)
  std::string progress() const override;

  // The two events, public for tests: merge number n redraws A from (seed, n).
  void merge_and_reinit(int n);
  void reset_optimizer(int n);

 private:
  int every_, cycle_;  // --relora, --cycle_length (default: --relora)
  bool merged_ = false, reset_ = false;
};

MethodInfo relora_method();

}  // namespace switchlora
