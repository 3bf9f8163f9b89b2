// The model the model-level tests share: small enough for finite differences
// and many steps in milliseconds, with every layer kind present.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "engine/rng.h"
#include "model/config.h"

namespace switchlora::test {

// A config of the given shape (hidden C, MLP I, NH heads, L layers,
// vocabulary V, sequences up to T), the rest at their defaults.
inline LlamaConfig small_config(int C, int I, int NH, int L, int V, int T = 64) {
  LlamaConfig c;
  c.hidden_size = C;
  c.intermediate_size = I;
  c.num_attention_heads = NH;
  c.num_hidden_layers = L;
  c.vocab_size = V;
  c.max_sequence_length = T;
  return c;
}

inline LlamaConfig tiny_config() {
  LlamaConfig c;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_attention_heads = 2;
  c.num_hidden_layers = 2;
  c.vocab_size = 32;
  c.max_sequence_length = 16;
  c.initializer_range = 0.2f;  // large enough that every layer matters to the loss
  return c;
}

// One fixed batch of B sequences of T random token ids below 32 (the tiny
// vocabulary), handed out as a Trainer BatchFn every step.
struct FixedBatch {
  int B, T;
  std::vector<int32_t> in, tg;
  FixedBatch(int batch, int time, uint64_t seed) : B(batch), T(time) {
    Rng rng{seed, kStreamData, 0};
    for (int i = 0; i < B * T; i++) {
      in.push_back((int32_t)rng.below(32));
      tg.push_back((int32_t)rng.below(32));
    }
  }
  std::function<void(int32_t*, int32_t*)> fn() const {
    return [this](int32_t* i, int32_t* t) {
      std::copy(in.begin(), in.end(), i);
      std::copy(tg.begin(), tg.end(), t);
    };
  }
};

}  // namespace switchlora::test
