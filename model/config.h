// LLaMA model configuration, read from an HF-style config.json (DESIGN §3).
#pragma once
#include <string>

namespace switchlora {

struct LlamaConfig {
  int hidden_size = 0;            // C
  int intermediate_size = 0;      // I, the SwiGLU width
  int num_attention_heads = 0;    // NH (head size HS = C / NH)
  int num_hidden_layers = 0;      // L
  int vocab_size = 0;             // V
  float rms_norm_eps = 1e-6f;
  int max_sequence_length = 0;    // the longest T the model accepts
  float initializer_range = 0.02f;
  float rope_theta = 10000.0f;

  int head_size() const { return hidden_size / num_attention_heads; }
};

// Reads and validates `path`; every error names the file and the field.
LlamaConfig load_config(const std::string& path);
// Checks the invariants load_config checks (for configs built in code).
void validate_config(const LlamaConfig& c, const std::string& where);
// The config as HF's LlamaConfig JSON text (for checkpoints and export).
std::string config_to_json(const LlamaConfig& c);
LlamaConfig config_from_json(const std::string& text, const std::string& where);

}  // namespace switchlora
