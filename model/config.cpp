#include "model/config.h"

#include <cmath>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/error.h"

namespace switchlora {

using json = nlohmann::json;

namespace {

// A required integer field; HF configs sometimes carry floats like 1024.0.
int get_int(const json& j, const char* field, const std::string& where) {
  if (!j.contains(field))
    throw Error(where + ": missing field \"" + field + "\"");
  const json& v = j[field];
  if (!v.is_number() || (v.is_number_float() && v.get<double>() != std::floor(v.get<double>())))
    throw Error(where + ": field \"" + field + "\" must be an integer, got " + v.dump());
  // Range-checked before the conversion: 2^32 + 16 must not wrap to 16.
  const double x = v.get<double>();
  if (x < 1 || x > (1 << 30))
    throw Error(where + ": field \"" + field + "\" = " + v.dump() + " is outside [1, 2^30]");
  return (int)v.get<int64_t>();
}

float get_float(const json& j, const char* field, float fallback, const std::string& where) {
  if (!j.contains(field)) return fallback;
  const json& v = j[field];
  if (!v.is_number())
    throw Error(where + ": field \"" + field + "\" must be a number, got " + v.dump());
  return v.get<float>();
}

}  // namespace

void validate_config(const LlamaConfig& c, const std::string& where) {
  auto positive = [&](int v, const char* field) {
    if (v <= 0) throw Error(where + ": field \"" + field + "\" must be > 0, got " + std::to_string(v));
  };
  positive(c.hidden_size, "hidden_size");
  positive(c.intermediate_size, "intermediate_size");
  positive(c.num_attention_heads, "num_attention_heads");
  positive(c.num_hidden_layers, "num_hidden_layers");
  positive(c.vocab_size, "vocab_size");
  positive(c.max_sequence_length, "max_sequence_length");
  if (c.hidden_size % c.num_attention_heads != 0)
    throw Error(where + ": hidden_size " + std::to_string(c.hidden_size) +
                " is not divisible by num_attention_heads " + std::to_string(c.num_attention_heads));
  if (c.head_size() % 2 != 0)
    throw Error(where + ": head size hidden_size/num_attention_heads = " +
                std::to_string(c.head_size()) + " must be even for RoPE");
  if (!(c.rms_norm_eps > 0)) throw Error(where + ": field \"rms_norm_eps\" must be > 0");
  if (!(c.initializer_range > 0)) throw Error(where + ": field \"initializer_range\" must be > 0");
  if (!(c.rope_theta > 0)) throw Error(where + ": field \"rope_theta\" must be > 0");
}

LlamaConfig config_from_json(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(where + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(where + ": expected a JSON object");
  // HF LLaMA fields this engine does not implement: refused, never ignored
  // (a model that silently computes something else is worse than an error).
  auto refuse = [&](const char* field, bool differs, const std::string& what) {
    if (j.contains(field) && !j[field].is_null() && differs)
      throw Error(where + ": field \"" + field + "\" = " + j[field].dump() + ": " + what + " is not implemented");
  };
  refuse("hidden_act", j.value("hidden_act", json("silu")) != "silu", "an activation other than silu");
  refuse("tie_word_embeddings", j.value("tie_word_embeddings", json(false)) != false,
         "tying lm_head to the embeddings");
  refuse("num_key_value_heads", j.value("num_key_value_heads", json()) != j.value("num_attention_heads", json()),
         "grouped-query attention (num_key_value_heads != num_attention_heads)");
  refuse("rope_scaling", true, "RoPE scaling");
  refuse("attention_bias", j.value("attention_bias", json(false)) != false, "biases in attention");
  refuse("mlp_bias", j.value("mlp_bias", json(false)) != false, "biases in the MLP");
  LlamaConfig c;
  c.hidden_size = get_int(j, "hidden_size", where);
  c.intermediate_size = get_int(j, "intermediate_size", where);
  c.num_attention_heads = get_int(j, "num_attention_heads", where);
  c.num_hidden_layers = get_int(j, "num_hidden_layers", where);
  c.vocab_size = get_int(j, "vocab_size", where);
  c.max_sequence_length = j.contains("max_sequence_length")
                              ? get_int(j, "max_sequence_length", where)
                              : get_int(j, "max_position_embeddings", where);
  c.rms_norm_eps = get_float(j, "rms_norm_eps", 1e-6f, where);
  c.initializer_range = get_float(j, "initializer_range", 0.02f, where);
  c.rope_theta = get_float(j, "rope_theta", 10000.0f, where);
  validate_config(c, where);
  return c;
}

LlamaConfig load_config(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw Error(path + ": cannot open model config");
  std::stringstream ss;
  ss << f.rdbuf();
  return config_from_json(ss.str(), path);
}

std::string config_to_json(const LlamaConfig& c) {
  json j = {{"architectures", {"LlamaForCausalLM"}},
            {"model_type", "llama"},
            {"hidden_act", "silu"},
            {"hidden_size", c.hidden_size},
            {"intermediate_size", c.intermediate_size},
            {"num_attention_heads", c.num_attention_heads},
            {"num_key_value_heads", c.num_attention_heads},
            {"num_hidden_layers", c.num_hidden_layers},
            {"vocab_size", c.vocab_size},
            {"rms_norm_eps", c.rms_norm_eps},
            {"max_sequence_length", c.max_sequence_length},
            {"max_position_embeddings", c.max_sequence_length},
            {"initializer_range", c.initializer_range},
            {"rope_theta", c.rope_theta},
            {"tie_word_embeddings", false},
            {"torch_dtype", "float32"}};
  return j.dump(2);
}

}  // namespace switchlora
