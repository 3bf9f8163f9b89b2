// The model the model-level tests share: small enough for finite differences
// and many steps in milliseconds, with every layer kind present.
#pragma once
#include "model/config.h"

namespace switchlora::test {

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

}  // namespace switchlora::test
