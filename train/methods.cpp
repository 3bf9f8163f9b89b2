// The methods `switchlora train`, `bench` and `plan` know, by --method name.
// A new method is its own file pair (train/<name>_method.{h,cpp}, defining a
// MethodInfo) and one #include and one line here.
#include <algorithm>

#include "train/galore_method.h"
#include "train/lora_method.h"
#include "train/method.h"
#include "train/relora_method.h"
#include "train/switchlora_method.h"

namespace switchlora {

namespace {

// Full rank: the plain model, AdamW on everything.
ParamCounts full_rank_counts(const LlamaConfig& c, const TrainOptions& /*o*/) {
  ParamCounts n;
  n.trainable = always_trained(c);
  for (const auto& [in, out] : block_linears(c)) n.trainable += c.num_hidden_layers * in * out;
  n.optimizer_state = 2 * n.trainable;
  return n;
}

MethodInfo full_rank_method() {
  auto make = [](Llama& model, const TrainOptions& o) {
    auto m = std::make_unique<Method>(model, o);
    m->build_optimizer(model.params.adam_tensors());
    return m;
  };
  return {"full", "every weight trained with AdamW", false, nullptr, make, full_rank_counts};
}

}  // namespace

const std::vector<MethodInfo>& all_methods() {
  static const std::vector<MethodInfo> methods = {
      full_rank_method(),
      lora_method(),
      switchlora_method(),
      relora_method(),
      galore_method(),
  };
  return methods;
}

}  // namespace switchlora
