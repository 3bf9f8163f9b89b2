#include "model/lora.h"

#include <cmath>

#include "engine/error.h"

namespace switchlora {

float switchlora_sigma_A(int out, int in, int r) {
  const double gain = std::sqrt(1.0 / 3.0);
  return (float)(std::pow(std::sqrt((double)out) * r / std::pow((double)in, 1.5), 0.25) * std::sqrt(gain));
}

float switchlora_sigma_B(int out, int in, int r) {
  const double gain = std::sqrt(1.0 / 3.0);
  return (float)(std::pow((double)r / std::sqrt((double)out * in), 0.25) * std::sqrt(gain));
}

void merge_adapter(Backend& be, const Linear& l, float sign, float* W) {
  // W (out, in) += sign * s * B (out, r) @ A (r, in)
  be.gemm(W ? W : l.W->data, l.B->data, l.A->data, l.out, l.in, l.r, false, false, sign * l.s, 1.0f,
          Precision::kFp32);
}

nlohmann::json lora_options_to_json(const LoraOptions& o) {
  return {{"use_lora", o.use_lora}, {"lora_rank", o.lora_rank}, {"lora_alpha", o.lora_alpha},
          {"init_lora_type", o.init_lora_type}};
}

LoraOptions lora_options_from_json(const nlohmann::json& j, const std::string& where) {
  try {
    LoraOptions o;
    o.use_lora = j.at("use_lora").get<bool>();
    o.lora_rank = j.at("lora_rank").get<int>();
    o.lora_alpha = j.at("lora_alpha").get<float>();
    o.init_lora_type = j.at("init_lora_type").get<std::string>();
    return o;
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + ": bad adapter description: " + e.what());
  }
}

void init_lora_adapters(Llama& model, uint64_t seed) {
  for (Linear* l : model.linears()) {
    if (l->r == 0) continue;
    if (model.lora.init_lora_type == "origin_lora") {
      fill_uniform(model.params, *l->A, seed, 1.0f / std::sqrt((float)l->in));
      model.params.set(*l->B, std::vector<float>(l->B->numel(), 0.0f));
    } else {
      fill_uniform(model.params, *l->A, seed, std::sqrt(3.0f) * switchlora_sigma_A(l->out, l->in, l->r));
      fill_uniform(model.params, *l->B, seed, std::sqrt(3.0f) * switchlora_sigma_B(l->out, l->in, l->r));
      merge_adapter(model.be, *l, -1.0f);
    }
  }
}

}  // namespace switchlora
