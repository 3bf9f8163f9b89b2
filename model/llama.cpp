#include "model/llama.h"

#include <cmath>
#include <cstring>

#include "engine/error.h"
#include "engine/rng.h"

namespace switchlora {

Llama::Llama(const LlamaConfig& c, const LoraOptions& lo, uint64_t seed, Backend& backend)
    : config(c), lora(lo), be(backend), seed_(seed) {
  validate_config(c, "model config");
  const int C = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, r = lo.use_lora ? lo.lora_rank : 0;
  if (lo.use_lora) {
    if (lo.lora_rank <= 0)
      throw Error("--lora_rank must be > 0 with --use_lora, got " + std::to_string(lo.lora_rank));
    if (lo.lora_rank >= std::min(C, I))
      throw Error("--lora_rank " + std::to_string(lo.lora_rank) + " must be < min(in, out) = " +
                  std::to_string(std::min(C, I)) + " of every adapted layer");
    if (!(lo.lora_dropout >= 0.0f && lo.lora_dropout < 1.0f))
      throw Error("--lora_dropout must be in [0, 1), got " + std::to_string(lo.lora_dropout));
    if (lo.init_lora_type != "switchlora" && lo.init_lora_type != "origin_lora")
      throw Error("--init_lora_type must be switchlora or origin_lora, got \"" + lo.init_lora_type + "\"");
  }

  // Plan: the parameter list in HF order. With LoRA, W is frozen and A, B train.
  std::vector<int> ix_ln1, ix_ln2;
  struct Planned { std::string name; int in, out, W, A = -1, B = -1; };
  std::vector<Planned> planned;
  auto plan_linear = [&](const std::string& name, int in, int out) {
    Planned p{name, in, out, params.add(name + ".weight", out, in, r == 0)};
    if (r > 0) {
      p.A = params.add(name + ".lora_A.weight", r, in, true, StepCounter::kPerRow);
      p.B = params.add(name + ".lora_B.weight", out, r, true, StepCounter::kPerColumn);
    }
    planned.push_back(p);
  };
  const int ix_wte = params.add("model.embed_tokens.weight", V, C, true);
  for (int l = 0; l < c.num_hidden_layers; l++) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    ix_ln1.push_back(params.add(pre + "input_layernorm.weight", 1, C, true));
    plan_linear(pre + "self_attn.q_proj", C, C);
    plan_linear(pre + "self_attn.k_proj", C, C);
    plan_linear(pre + "self_attn.v_proj", C, C);
    plan_linear(pre + "self_attn.o_proj", C, C);
    ix_ln2.push_back(params.add(pre + "post_attention_layernorm.weight", 1, C, true));
    plan_linear(pre + "mlp.gate_proj", C, I);
    plan_linear(pre + "mlp.up_proj", C, I);
    plan_linear(pre + "mlp.down_proj", I, C);
  }
  const int ix_norm = params.add("model.norm.weight", 1, C, true);
  const int ix_head = params.add("lm_head.weight", V, C, true);
  params.allocate(be);

  wte = &params[ix_wte];
  norm_f = &params[ix_norm];
  lm_head = &params[ix_head];
  std::vector<Linear> lins;
  for (const Planned& p : planned) {
    Linear l;
    l.name = p.name;
    l.in = p.in;
    l.out = p.out;
    l.r = r;
    l.s = r > 0 ? lo.lora_alpha / (float)r : 0.0f;
    l.W = &params[p.W];
    l.A = p.A >= 0 ? &params[p.A] : nullptr;
    l.B = p.B >= 0 ? &params[p.B] : nullptr;
    lins.push_back(l);
  }
  blocks.resize(c.num_hidden_layers);
  for (int l = 0; l < c.num_hidden_layers; l++) {
    Block& b = blocks[l];
    b.ln1 = &params[ix_ln1[l]];
    b.ln2 = &params[ix_ln2[l]];
    Linear* seven[7] = {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down};
    for (int j = 0; j < 7; j++) *seven[j] = lins[7 * l + j];
  }

  // Initialise: every weight matrix ~ N(0, initializer_range), norms = 1.
  // LoRA's A and B stay zero: the method that owns them draws them.
  for (Param& p : params.params) {
    if (p.rows == 1) {
      params.set(p, std::vector<float>(p.numel(), 1.0f));
    } else if (p.counter == StepCounter::kPerTensor) {
      fill_normal(params, p, seed, c.initializer_range);
    }
  }
}

std::vector<Linear*> Llama::linears() {
  std::vector<Linear*> out;
  for (Block& b : blocks)
    for (Linear* l : {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down}) out.push_back(l);
  return out;
}

std::vector<const Linear*> Llama::linears() const {
  std::vector<const Linear*> out;
  for (const Block& b : blocks)
    for (const Linear* l : {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down}) out.push_back(l);
  return out;
}

size_t Llama::num_parameters() const { return params.num_trainable() + params.num_frozen(); }

void Llama::zero_grad() { be.zero(params.trainable_grad.data(), params.trainable_grad.size() * sizeof(float)); }

std::vector<float> Llama::logits_host() const {
  std::vector<float> out((size_t)B_ * T_ * config.vocab_size);
  be.copy_and_wait(out.data(), logits_, out.size() * sizeof(float));
  return out;
}

// One buffer for every saved activation, one for backward scratch.
void Llama::plan_activations(int B, int T) {
  if (B == B_ && T == T_) return;
  B_ = B;
  T_ = T;
  const LlamaConfig& c = config;
  const size_t N = (size_t)B * T, C = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const size_t NH = c.num_attention_heads, r = lora.use_lora ? lora.lora_rank : 0;
  const size_t per_block = 8 * N * C + 2 * N + B * NH * T + 3 * N * I + 7 * N * r;
  acts_ = Buffer<float>(be, c.num_hidden_layers * per_block + 2 * N * C + 3 * N + N * V);
  float* p = acts_.data();
  auto take = [&p](size_t n) { float* q = p; p += n; return q; };
  block_acts_.resize(c.num_hidden_layers);
  for (BlockActs& a : block_acts_) {
    a.x = take(N * C);
    a.ln1 = take(N * C);
    a.rstd1 = take(N);
    a.q = take(N * C);
    a.k = take(N * C);
    a.v = take(N * C);
    a.att = take(N * C);
    a.lse = take(B * NH * T);
    a.h = take(N * C);
    a.ln2 = take(N * C);
    a.rstd2 = take(N);
    a.gate = take(N * I);
    a.up = take(N * I);
    a.act = take(N * I);
    for (float*& xa : a.xa) xa = take(N * r);
  }
  res_final_ = take(N * C);
  lnf_ = take(N * C);
  rstdf_ = take(N);
  losses_ = take(N);
  lse_ce_ = take(N);
  logits_ = take(N * V);

  const size_t drop = lora.lora_dropout > 0 ? N * std::max(C, I) : 0;  // LoRA dropout: drop(x), its dx
  const size_t merged = r > 0 ? C * I : 0;  // LoRA's W + s B A, the largest W (model/linear.h)
  scratch_ = Buffer<float>(be, 8 * N * C + 3 * N * I + N * r + 2 * drop + merged);
  p = scratch_.data();
  d_res_ = take(N * C);
  d_ln_ = take(N * C);
  d_att_ = take(N * C);
  d_q_ = take(N * C);
  d_k_ = take(N * C);
  d_v_ = take(N * C);
  d_qr_ = take(N * C);
  d_kr_ = take(N * C);
  d_gate_ = take(N * I);
  d_up_ = take(N * I);
  d_act_ = take(N * I);
  d_xa_ = take(N * r);
  drop_x_ = take(drop);
  drop_dx_ = take(drop);
  w_merged_ = merged ? take(merged) : nullptr;
  tokens_ = Buffer<int32_t>(be, 2 * N);
}

// Linear j (q, k, v, o, gate, up, down) of block l: its LoRA dropout for this
// micro-batch, keyed by (dropout_key, 7 l + j); none when not training.
LoraDropout Llama::dropout(int l, int j) const {
  if (!training || lora.lora_dropout == 0) return {};
  return {lora.lora_dropout, seed_, hash64(kStreamDropout, dropout_key, (uint64_t)(7 * l + j)), drop_x_, drop_dx_};
}

void Llama::block_forward(int l, Block& b, BlockActs& a, float* out) {
  const LlamaConfig& c = config;
  const int B = B_, T = T_, N = B * T, C = c.hidden_size, I = c.intermediate_size;
  const int NH = c.num_attention_heads, HS = c.head_size();
  float* pre = d_q_;  // the q and k projections before RoPE are not needed later
  be.rmsnorm_forward(a.ln1, a.rstd1, a.x, b.ln1->data, N, C, c.rms_norm_eps);
  linear_layer_forward(be, b.q, pre, a.xa[0], a.ln1, N, dropout(l, 0), w_merged_);
  be.rope_forward(a.q, pre, B, T, NH, HS, c.rope_theta);
  linear_layer_forward(be, b.k, pre, a.xa[1], a.ln1, N, dropout(l, 1), w_merged_);
  be.rope_forward(a.k, pre, B, T, NH, HS, c.rope_theta);
  linear_layer_forward(be, b.v, a.v, a.xa[2], a.ln1, N, dropout(l, 2), w_merged_);
  be.attention_forward(a.att, a.lse, a.q, a.k, a.v, B, T, NH, HS);
  linear_layer_forward(be, b.o, pre, a.xa[3], a.att, N, dropout(l, 3), w_merged_);
  be.residual_forward(a.h, a.x, pre, (int64_t)N * C);          // h = x + o(att)
  be.rmsnorm_forward(a.ln2, a.rstd2, a.h, b.ln2->data, N, C, c.rms_norm_eps);
  linear_layer_forward(be, b.gate, a.gate, a.xa[4], a.ln2, N, dropout(l, 4), w_merged_);
  linear_layer_forward(be, b.up, a.up, a.xa[5], a.ln2, N, dropout(l, 5), w_merged_);
  be.swiglu_forward(a.act, a.gate, a.up, (int64_t)N * I);
  linear_layer_forward(be, b.down, pre, a.xa[6], a.act, N, dropout(l, 6), w_merged_);
  be.residual_forward(out, a.h, pre, (int64_t)N * C);          // y = h + down(...)
}

float Llama::forward(const int32_t* inputs, const int32_t* targets, int B, int T) {
  const LlamaConfig& c = config;
  if (T > c.max_sequence_length)
    throw Error("--max_length " + std::to_string(T) + " exceeds the model's max_sequence_length " +
                std::to_string(c.max_sequence_length));
  plan_activations(B, T);
  const int N = B * T, C = c.hidden_size, V = c.vocab_size;
  auto check_ids = [&](const int32_t* ids, const char* what) {
    for (int i = 0; i < N; i++)
      if (ids[i] < 0 || ids[i] >= V)
        throw Error(std::string(what) + " token id " + std::to_string(ids[i]) + " at position " +
                    std::to_string(i) + " is outside the vocabulary [0, " + std::to_string(V) + ")");
  };
  check_ids(inputs, "input");
  if (targets) check_ids(targets, "target");
  int32_t* tokens = tokens_.data();
  be.copy(tokens, inputs, (size_t)N * sizeof(int32_t));
  if (targets) be.copy(tokens + N, targets, (size_t)N * sizeof(int32_t));
  inputs_ = tokens;
  targets_ = targets ? tokens + N : nullptr;

  be.embedding_forward(block_acts_[0].x, inputs_, wte->data, N, C);
  for (int l = 0; l < c.num_hidden_layers; l++) {
    float* out = l + 1 < c.num_hidden_layers ? block_acts_[l + 1].x : res_final_;
    block_forward(l, blocks[l], block_acts_[l], out);
  }
  be.rmsnorm_forward(lnf_, rstdf_, res_final_, norm_f->data, N, C, c.rms_norm_eps);
  be.linear_forward(logits_, lnf_, lm_head->data, N, C, V);
  if (!targets) return 0.0f;
  return be.cross_entropy_forward(losses_, lse_ce_, logits_, targets_, N, V);
}

void Llama::block_backward(int l, Block& b, BlockActs& a, float* dres) {
  const LlamaConfig& c = config;
  const int B = B_, T = T_, N = B * T, C = c.hidden_size, I = c.intermediate_size;
  const int NH = c.num_attention_heads, HS = c.head_size();
  const size_t NC = (size_t)N * C, NI = (size_t)N * I;
  // dres holds d(block output). The residual passes it straight to h and to
  // the MLP output: dh = dres, d(down out) = dres. Each gradient buffer's
  // first writer overwrites it (dx_beta 0) instead of a zeroing; the rest add to it.
  const float overwrite = 0.0f;  // dx_beta
  linear_layer_backward(be, b.down, d_act_, d_xa_, dres, a.act, a.xa[6], N, dropout(l, 6), w_merged_, overwrite);
  be.zero(d_gate_, NI * sizeof(float));
  be.zero(d_up_, NI * sizeof(float));
  be.swiglu_backward(d_gate_, d_up_, d_act_, a.gate, a.up, (int64_t)NI);
  linear_layer_backward(be, b.gate, d_ln_, d_xa_, d_gate_, a.ln2, a.xa[4], N, dropout(l, 4), w_merged_, overwrite);
  linear_layer_backward(be, b.up, d_ln_, d_xa_, d_up_, a.ln2, a.xa[5], N, dropout(l, 5), w_merged_);
  be.rmsnorm_backward(dres, b.ln2->grad, d_ln_, a.h, b.ln2->data, a.rstd2, N, C);  // dres is now dh
  // Attention half: h = x + o(att)  ->  dx = dh, d(o out) = dh.
  linear_layer_backward(be, b.o, d_att_, d_xa_, dres, a.att, a.xa[3], N, dropout(l, 3), w_merged_, overwrite);
  be.zero(d_qr_, NC * sizeof(float));
  be.zero(d_kr_, NC * sizeof(float));
  be.zero(d_v_, NC * sizeof(float));
  be.attention_backward(d_qr_, d_kr_, d_v_, d_att_, a.q, a.k, a.v, a.att, a.lse, B, T, NH, HS);
  be.zero(d_q_, NC * sizeof(float));
  be.zero(d_k_, NC * sizeof(float));
  be.rope_backward(d_q_, d_qr_, B, T, NH, HS, c.rope_theta);
  be.rope_backward(d_k_, d_kr_, B, T, NH, HS, c.rope_theta);
  linear_layer_backward(be, b.q, d_ln_, d_xa_, d_q_, a.ln1, a.xa[0], N, dropout(l, 0), w_merged_, overwrite);
  linear_layer_backward(be, b.k, d_ln_, d_xa_, d_k_, a.ln1, a.xa[1], N, dropout(l, 1), w_merged_);
  linear_layer_backward(be, b.v, d_ln_, d_xa_, d_v_, a.ln1, a.xa[2], N, dropout(l, 2), w_merged_);
  be.rmsnorm_backward(dres, b.ln1->grad, d_ln_, a.x, b.ln1->data, a.rstd1, N, C);  // dres is now dx
}

void Llama::backward(float grad_scale) {
  SL_CHECK(targets_ != nullptr, "backward() needs a forward() with targets");
  const LlamaConfig& c = config;
  const int N = B_ * T_, C = c.hidden_size, V = c.vocab_size;
  // d(mean loss) / d logits, scaled for gradient accumulation, written over
  // the logits (nothing reads them after the loss).
  float* d_logits = logits_;
  be.cross_entropy_backward(d_logits, logits_, lse_ce_, targets_, grad_scale / N, N, V);
  be.linear_backward(d_ln_, lm_head->grad, d_logits, lnf_, lm_head->data, N, C, V, 0.0f);  // d_ln_ = ...
  be.zero(d_res_, (size_t)N * C * sizeof(float));
  be.rmsnorm_backward(d_res_, norm_f->grad, d_ln_, res_final_, norm_f->data, rstdf_, N, C);
  for (int l = c.num_hidden_layers - 1; l >= 0; l--) block_backward(l, blocks[l], block_acts_[l], d_res_);
  be.embedding_backward(wte->grad, d_res_, inputs_, N, C);
}

}  // namespace switchlora
