// The LLaMA model (DESIGN §3): pre-norm blocks, RoPE attention, SwiGLU MLP,
// final RMSNorm and an untied lm_head, with every attention/MLP linear layer
// optionally carrying a LoRA adapter.
//
//   h = x + o(attn(rope(q(n1(x))), rope(k(n1(x))), v(n1(x))))
//   y = h + down(silu(gate(n2(h))) * up(n2(h)))
//
// "Autograd" is explicit: forward() keeps the activations backward() needs
// in one buffer, and backward() runs the layers in reverse.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/linear.h"
#include "model/params.h"

namespace switchlora {

struct LoraOptions {
  bool use_lora = false;
  int lora_rank = 0;
  float lora_alpha = 1.0f;
  std::string init_lora_type = "switchlora";  // switchlora | origin_lora
  float lora_dropout = 0.0f;                   // on each adapter's input, while training
};

// The seven linear layers of one block, in the order adapters are listed.
struct Block {
  Param* ln1 = nullptr;  // input_layernorm (C)
  Param* ln2 = nullptr;  // post_attention_layernorm (C)
  Linear q, k, v, o, gate, up, down;
};

// Saved activations of one block for a (B, T) batch; N = B * T rows.
struct BlockActs {
  float* x;      // (N, C) block input (the residual stream)
  float* ln1;    // (N, C)
  float* rstd1;  // (N)
  float* q;      // (N, C) after RoPE
  float* k;      // (N, C) after RoPE
  float* v;      // (N, C)
  float* att;    // (N, C) attention output, before o
  float* lse;    // (B, NH, T) softmax log-sum-exp
  float* h;      // (N, C) residual after attention
  float* ln2;    // (N, C)
  float* rstd2;  // (N)
  float* gate;   // (N, I)
  float* up;     // (N, I)
  float* act;    // (N, I) silu(gate) * up
  float* xa[7];  // (N, r) LoRA's x A^T for q, k, v, o, gate, up, down
};

class Llama {
 public:
  // Builds the parameters and draws them from seed: weights ~ N(0,
  // initializer_range), norms = 1. With lora.use_lora, W is frozen and the
  // adapters A, B are allocated as zeros: the method that owns them
  // initialises them (model/lora.h, model/switchlora.h).
  // Everything (parameters, gradients, activations) lives in be's memory.
  Llama(const LlamaConfig& config, const LoraOptions& lora, uint64_t seed,
        Backend& be = cpu_backend());

  // inputs, targets: (B, T) token ids in HOST memory. Returns the mean cross-entropy, or 0
  // when targets is nullptr (logits only). Activations are (re)allocated when
  // B or T change.
  float forward(const int32_t* inputs, const int32_t* targets, int B, int T);
  // Accumulates d(loss * grad_scale) into the trainable gradients. The
  // logits are overwritten by their gradient (no (N, V) buffer for it).
  void backward(float grad_scale);
  void zero_grad();

  // (B, T, V) of the last forward, backend memory; until backward(), which
  // writes d loss / d logits over them.
  const float* logits() const { return logits_; }
  std::vector<float> logits_host() const;           // the same, copied to the host
  std::vector<Linear*> linears();                   // all 7 L linear layers
  std::vector<const Linear*> linears() const;
  size_t num_parameters() const;                    // trainable + frozen

  LlamaConfig config;
  LoraOptions lora;
  Backend& be;
  ParamStore params;
  Param* wte = nullptr;      // (V, C) model.embed_tokens.weight
  Param* norm_f = nullptr;   // (C) model.norm.weight
  Param* lm_head = nullptr;  // (V, C)
  std::vector<Block> blocks;
  // LoRA dropout (lora.lora_dropout) applies while `training`; the masks of a
  // forward and its backward are keyed by dropout_key (the trainer sets it to
  // the micro-batch's index in the run, so ranks and resumes agree).
  bool training = false;
  uint64_t dropout_key = 0;

 private:
  void plan_activations(int B, int T);
  void block_forward(int l, Block& b, BlockActs& a, float* out);
  void block_backward(int l, Block& b, BlockActs& a, float* dres);
  LoraDropout dropout(int l, int j) const;

  int B_ = 0, T_ = 0;
  Buffer<float> acts_;             // every saved activation, one buffer
  Buffer<float> scratch_;          // backward temporaries, one buffer
  Buffer<int32_t> tokens_;         // (2, N) inputs and targets, copied to the backend
  std::vector<BlockActs> block_acts_;
  const int32_t* inputs_ = nullptr;
  const int32_t* targets_ = nullptr;
  float* res_final_ = nullptr;     // (N, C) output of the last block
  float* lnf_ = nullptr;           // (N, C)
  float* rstdf_ = nullptr;         // (N)
  float* logits_ = nullptr;        // (N, V)
  float* losses_ = nullptr;        // (N)
  float* lse_ce_ = nullptr;        // (N)
  // backward scratch
  float *d_res_, *d_ln_, *d_att_, *d_q_, *d_k_, *d_v_, *d_qr_, *d_kr_;
  float *d_gate_, *d_up_, *d_act_, *d_xa_;
  float *drop_x_ = nullptr, *drop_dx_ = nullptr;  // (N, max(C, I)) each, with LoRA dropout
  float* w_merged_ = nullptr;                      // (I, C) with LoRA: W + s B A (model/linear.h)
  uint64_t seed_ = 0;
};

}  // namespace switchlora
