#include "train/plan.h"

#include <algorithm>

namespace switchlora {

ParamCounts count_parameters(const LlamaConfig& c, const TrainOptions& o) { return method_info(o.method).count(c, o); }

MemoryPlan plan_memory(const LlamaConfig& c, const TrainOptions& o, int bytes_per_value) {
  const ParamCounts n = count_parameters(c, o);
  const double e = bytes_per_value;
  MemoryPlan p;
  p.weights = e * n.total();
  p.gradients = e * n.trainable;
  p.optimizer = e * n.optimizer_state;
  (o.sw.offload_candidates ? p.candidates_host : p.candidates_device) = e * n.candidates;

  // The activation arena of model/llama.cpp (plan_activations), per block:
  // 8 (N, C) saved tensors, 2 rstd (N), attention lse (N, NH), gate, up and
  // their product (N, I), and x A^T (N, r) for each of the 7 adapted layers;
  // then the final residual and norm, rstd, losses, lse and logits (N, V),
  // which the backward overwrites with their gradient; and the backward
  // scratch, with LoRA dropout's drop(x) and its dx and, with adapters, the
  // merged weight W + s B A of the largest linear (C, I).
  const double N = (double)o.batch_size * o.max_length, C = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const double NH = c.num_attention_heads, L = c.num_hidden_layers;
  const bool adapters = method_info(o.method).adapters;
  const double ra = adapters ? o.lora.lora_rank : 0;
  const double drop = adapters && o.lora.lora_dropout > 0 ? 2 * N * std::max(C, I) : 0;
  const double saved = L * (8 * N * C + 2 * N + N * NH + 3 * N * I + 7 * N * ra) + 2 * N * C + 3 * N + N * V;
  const double merged = adapters ? C * I : 0;
  const double scratch = 8 * N * C + 3 * N * I + N * ra + drop + merged;
  p.activations = e * (saved + scratch);
  return p;
}

}  // namespace switchlora
