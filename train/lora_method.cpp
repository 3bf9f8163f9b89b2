#include "train/lora_method.h"

#include <algorithm>

#include "engine/error.h"
#include "model/lora.h"
#include "train/options.h"

namespace switchlora {

ParamCounts lora_counts(const LlamaConfig& c, const TrainOptions& o) {
  const int r = o.lora.lora_rank;
  const int C = c.hidden_size, I = c.intermediate_size;
  if (r <= 0 || r >= std::min(C, I))
    throw Error("--lora_rank " + std::to_string(r) + " must be in (0, min(in, out) = " +
                std::to_string(std::min(C, I)) + ") of every adapted layer");
  ParamCounts n;
  n.trainable = always_trained(c);
  for (const auto& [in, out] : block_linears(c)) {
    n.frozen += c.num_hidden_layers * in * out;
    n.trainable += c.num_hidden_layers * (size_t)r * (in + out);
  }
  n.optimizer_state = 2 * n.trainable;
  return n;
}

MethodInfo lora_method() {
  auto make = [](Llama& model, const TrainOptions& o) {
    init_lora_adapters(model, (uint64_t)o.seed);
    auto m = std::make_unique<Method>(model, o);
    m->build_optimizer(model.params.adam_tensors());
    return m;
  };
  return {"lora", "LoRA: frozen W, AdamW on adapters A, B", true, nullptr, make, lora_counts};
}

}  // namespace switchlora
