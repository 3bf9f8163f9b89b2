#include "tools/plan.h"

#include <algorithm>
#include <vector>

#include "engine/error.h"

namespace switchlora {

namespace {

struct Shape {
  size_t in, out;
};

// The 7 linear layers of one block (q, k, v, o, gate, up, down) as (in, out).
std::vector<Shape> block_linears(const LlamaConfig& c) {
  const size_t C = c.hidden_size, I = c.intermediate_size;
  return {{C, C}, {C, C}, {C, C}, {C, C}, {C, I}, {C, I}, {I, C}};
}

// Embedding, lm_head, two norms per block and the final norm: always trained.
size_t always_trained(const LlamaConfig& c) {
  const size_t C = c.hidden_size, V = c.vocab_size, L = c.num_hidden_layers;
  return 2 * V * C + (2 * L + 1) * C;
}

}  // namespace

const char* method_name(Method m) {
  switch (m) {
    case Method::kFullRank: return "full-rank";
    case Method::kLora: return "lora";
    case Method::kSwitchLora: return "switchlora";
    case Method::kGalore: return "galore";
  }
  return "";
}

ParamCounts count_parameters(const LlamaConfig& c, Method m, int r) {
  const bool adapters = m == Method::kLora || m == Method::kSwitchLora;
  const int C = c.hidden_size, I = c.intermediate_size;
  if (m != Method::kFullRank && (r <= 0 || r >= std::min(C, I)))
    throw Error("--lora_rank " + std::to_string(r) + " must be in (0, min(in, out) = " +
                std::to_string(std::min(C, I)) + ") of every adapted layer");
  ParamCounts n;
  n.trainable = always_trained(c);
  for (int l = 0; l < c.num_hidden_layers; l++) {
    for (const Shape& s : block_linears(c)) {
      if (!adapters) {
        n.trainable += s.out * s.in;
        continue;
      }
      n.frozen += s.out * s.in;
      n.trainable += (size_t)r * (s.in + s.out);
      if (m == Method::kSwitchLora) n.candidates += std::min(s.in, s.out) * (s.in + s.out);
    }
  }
  return n;
}

MemoryPlan plan_memory(const LlamaConfig& c, Method m, int r, int B, int T, int bytes_per_value,
                       bool candidates_on_device) {
  const ParamCounts n = count_parameters(c, m, r);
  const double e = bytes_per_value;
  MemoryPlan p;
  p.weights = e * n.total();
  p.gradients = e * n.trainable;
  if (m == Method::kGalore) {
    double state = 2.0 * always_trained(c);
    for (const Shape& s : block_linears(c))
      state += c.num_hidden_layers * (double)r * (2.0 * std::max(s.in, s.out) + std::min(s.in, s.out));
    p.optimizer = e * state;
  } else {
    p.optimizer = e * 2.0 * n.trainable;
  }
  (candidates_on_device ? p.candidates_device : p.candidates_host) = e * n.candidates;

  // The activation arena of model/llama.cpp (plan_activations), per block:
  // 8 (N, C) saved tensors, 2 rstd (N), attention lse (N, NH), gate, up and
  // their product (N, I), and x A^T (N, r) for each of the 7 adapted layers;
  // then the final residual and norm, rstd, losses, lse and logits (N, V);
  // and the backward scratch.
  const double N = (double)B * T, C = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const double NH = c.num_attention_heads, L = c.num_hidden_layers;
  const double ra = (m == Method::kLora || m == Method::kSwitchLora) ? r : 0;
  const double saved = L * (8 * N * C + 2 * N + N * NH + 3 * N * I + 7 * N * ra) + 2 * N * C + 3 * N + N * V;
  const double scratch = 8 * N * C + 3 * N * I + N * ra + N * V;
  p.activations = e * (saved + scratch);
  return p;
}

}  // namespace switchlora
