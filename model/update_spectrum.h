// What a run learned, as linear algebra (switchlora inspect): for every
// attention/MLP linear, the learned update
//
//   dW = W_eff(t) - W_eff(0),   W_eff = W + s B A   (W alone when full rank)
//
// and its singular values sigma_1 >= sigma_2 >= ... >= 0, summarised by
//
//   effective rank  exp(H(p)),  p_i = sigma_i / sum_j sigma_j,  H = -sum p_i ln p_i
//                   (Roy & Vetterli, "The effective rank: a measure of
//                   effective dimensionality", EUSIPCO 2007): k for k equal
//                   singular values, 1 for rank one, continuous in between;
//   stable rank     ||dW||_F^2 / ||dW||_2^2 = sum sigma_i^2 / sigma_1^2;
//   above 1%        how many sigma_i exceed 0.01 sigma_1.
//
// The paper's claim in numbers: plain LoRA's dW = s (B_t A_t - B_0 A_0) has
// rank at most 2r (at most r when B_0 = 0, origin_lora), while SwitchLoRA's
// switches fold each outgoing vector into W, so its dW can reach min(m, n).
// Everything here is double precision on the host.
#pragma once
#include <string>
#include <vector>

#include "model/llama.h"

namespace switchlora {

struct Spectrum {
  std::vector<double> sigma;  // descending
  double frobenius = 0, effective_rank = 0, stable_rank = 0;
  int above_1pct = 0;
  // How many sigma_i exceed rel * sigma_1 (0 for a zero matrix).
  int numerical_rank(double rel) const;
};

// The statistics of a given list of singular values (any order, all >= 0).
Spectrum spectrum_of_sigma(std::vector<double> sigma);
// The singular values of M (rows x cols, row-major) and their statistics.
Spectrum spectrum_of(const std::vector<double>& M, int rows, int cols);

struct LayerUpdate {
  std::string name;  // HF module name, e.g. model.layers.0.self_attn.q_proj
  std::string kind;  // q, k, v, o, gate, up, down
  int rows = 0, cols = 0;
  Spectrum spectrum;
};

// W_eff of one linear, (out, in) row-major, in double.
std::vector<double> effective_weight(const Llama& model, const Linear& l);
// dW of every linear of `now` against `base` (the same shapes; throws naming
// the first layer that differs).
std::vector<LayerUpdate> learned_updates(const Llama& now, const Llama& base);

}  // namespace switchlora
