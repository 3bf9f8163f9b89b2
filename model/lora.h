// LoRA's adapters (DESIGN §4), the part every LoRA-family method shares:
//
//   y = x W^T + s (x A^T) B^T      W (out, in) frozen, A (r, in), B (out, r),
//                                  s = lora_alpha / r
//
// Llama (model/llama.h) only allocates A and B; the method that owns them
// initialises them, once: LoRA with init_lora_adapters below, SwitchLoRA
// from its candidate pools (model/switchlora.h). One merge_adapter moves the
// product into W for init, export and ReLoRA's restarts.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "model/llama.h"

namespace switchlora {

// W += sign * s B A, always in fp32 (a bf16 GEMM would round W0 - s B A + s B A
// away from W0). W: the layer's own weight, or (out, in) backend memory of
// the caller's (export merges into a copy).
void merge_adapter(Backend& be, const Linear& l, float sign, float* W = nullptr);

// Draws every adapter of `model` from seed, per model.lora.init_lora_type:
//   origin_lora: A ~ U(+-sqrt(3) gain / sqrt(in)) (Kaiming-uniform, a = sqrt(5),
//                gain^2 = 1/3), B = 0: the product starts at zero;
//   switchlora:  A ~ U(+-sqrt(3) sigma_A), B ~ U(+-sqrt(3) sigma_B), and
//                W = W0 - s B A, so the model computes exactly W0 at step 0.
void init_lora_adapters(Llama& model, uint64_t seed);

// The adapters' shape, as checkpoints record it ({"use_lora", "lora_rank",
// "lora_alpha", "init_lora_type"}); from_json names `where` on a bad field.
nlohmann::json lora_options_to_json(const LoraOptions& o);
LoraOptions lora_options_from_json(const nlohmann::json& j, const std::string& where);

// sigma of SwitchLoRA's uniform init for a layer with m = out, n = in:
//   sigma_A = ((sqrt(m) r) / n^{3/2})^{1/4} sqrt(gain)
//   sigma_B = (r / sqrt(m n))^{1/4} sqrt(gain),   gain^2 = 1/3
float switchlora_sigma_A(int out, int in, int r);
float switchlora_sigma_B(int out, int in, int r);

}  // namespace switchlora
