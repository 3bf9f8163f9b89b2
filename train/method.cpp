#include "train/method.h"

#include "engine/error.h"
#include "train/options.h"

namespace switchlora {

Method::Method(Llama& model, const TrainOptions& opts) : model_(model), opts_(opts) {}

// The parameters no adapter covers: the embedding, the norms and lm_head
// (every block weight is a *_proj.weight, its adapters *_proj.lora_*).
static bool is_non_adapter(const std::string& name) { return name.find("_proj.") == std::string::npos; }

void Method::build_optimizer(std::vector<AdamTensor> tensors) {
  // --non_adapter_lr: those tensors follow the same schedule at their own peak.
  if (opts_.non_adapter_lr > 0)
    for (AdamTensor& t : tensors)
      if (is_non_adapter(t.name)) t.lr_scale = opts_.non_adapter_lr / opts_.lr;
  const AdamWConfig c{opts_.adam_beta1, opts_.adam_beta2, opts_.adam_eps, opts_.weight_decay};
  optimizer_ = std::make_unique<AdamW>(c, std::move(tensors), model_.be);
}

void Method::update(int /*step*/, float lr) { optimizer_->step(lr); }

// optimizer.<tensor>.exp_avg, .exp_avg_sq, .step: PyTorch's names for AdamW's state.
void Method::save(Checkpoint& ck) const {
  for (int i = 0; i < (int)optimizer_->tensors().size(); i++) {
    const std::string pre = "optimizer." + optimizer_->tensors()[i].name;
    ck.put(pre + ".exp_avg", optimizer_->m(i));
    ck.put(pre + ".exp_avg_sq", optimizer_->v(i));
    ck.put(pre + ".step", optimizer_->counters(i));
  }
}

void Method::load(const Checkpoint& ck, const std::string& path) {
  for (int i = 0; i < (int)optimizer_->tensors().size(); i++) {
    const AdamTensor& t = optimizer_->tensors()[i];
    const std::string pre = "optimizer." + t.name;
    std::vector<float> m(t.numel()), v(t.numel());
    std::vector<int64_t> counters(num_counters(t.counter, t.rows, t.cols));
    ck.get(pre + ".exp_avg", m, path);
    ck.get(pre + ".exp_avg_sq", v, path);
    ck.get(pre + ".step", counters, path);
    optimizer_->set_state(i, m, v, counters, path);
  }
}

const MethodInfo& method_info(const std::string& name) {
  std::string names;
  for (const MethodInfo& m : all_methods()) {
    if (name == m.name) return m;
    names += (names.empty() ? "" : ", ") + std::string(m.name);
  }
  throw Error("--method must be one of " + names + ", got \"" + name + "\"");
}

std::vector<std::pair<size_t, size_t>> block_linears(const LlamaConfig& c) {
  const size_t C = c.hidden_size, I = c.intermediate_size;
  return {{C, C}, {C, C}, {C, C}, {C, C}, {C, I}, {C, I}, {I, C}};
}

size_t always_trained(const LlamaConfig& c) {
  const size_t C = c.hidden_size, V = c.vocab_size, L = c.num_hidden_layers;
  return 2 * V * C + (2 * L + 1) * C;
}

}  // namespace switchlora
