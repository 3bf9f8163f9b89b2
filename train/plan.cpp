#include "train/plan.h"

namespace switchlora {

ParamCounts count_parameters(const LlamaConfig& c, const std::string& method, int r) {
  return method_info(method).count(c, r);
}

MemoryPlan plan_memory(const LlamaConfig& c, const std::string& method, int r, int B, int T,
                       int bytes_per_value, bool candidates_on_device) {
  const ParamCounts n = count_parameters(c, method, r);
  const double e = bytes_per_value;
  MemoryPlan p;
  p.weights = e * n.total();
  p.gradients = e * n.trainable;
  p.optimizer = e * n.optimizer_state;
  (candidates_on_device ? p.candidates_device : p.candidates_host) = e * n.candidates;

  // The activation arena of model/llama.cpp (plan_activations), per block:
  // 8 (N, C) saved tensors, 2 rstd (N), attention lse (N, NH), gate, up and
  // their product (N, I), and x A^T (N, r) for each of the 7 adapted layers;
  // then the final residual and norm, rstd, losses, lse and logits (N, V);
  // and the backward scratch.
  const double N = (double)B * T, C = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const double NH = c.num_attention_heads, L = c.num_hidden_layers;
  const double ra = method_info(method).adapters ? r : 0;
  const double saved = L * (8 * N * C + 2 * N + N * NH + 3 * N * I + 7 * N * ra) + 2 * N * C + 3 * N + N * V;
  const double scratch = 8 * N * C + 3 * N * I + N * ra + N * V;
  p.activations = e * (saved + scratch);
  return p;
}

}  // namespace switchlora
