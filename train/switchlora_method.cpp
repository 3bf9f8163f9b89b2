#include "train/switchlora_method.h"

#include <algorithm>

#include "engine/error.h"
#include "train/flags.h"
#include "train/lora_method.h"
#include "train/options.h"

namespace switchlora {

SwitchLoraMethod::SwitchLoraMethod(Llama& model, const TrainOptions& o)
    : Method(model, o), switcher(model, o.sw) {
  std::vector<AdamTensor> tensors = model.params.adam_tensors();
  switcher.attach(tensors);  // the optimizer skips frozen vectors
  build_optimizer(std::move(tensors));
}

void SwitchLoraMethod::before_update(int t) {
  switched_ = switcher.switch_step(t, *optimizer_);
  interval_ = switcher.interval(t);
  switcher.zero_frozen_grads();
}

void SwitchLoraMethod::after_update(int t) {
  switcher.end_step();
  switcher.prefetch(t + 1);  // the next step's candidates travel during its forward/backward
}

namespace {

std::string pool_name(const SwitchLayer& L, bool B) {
  return L.lin->name + (B ? ".lora_B" : ".lora_A") + ".candidates";
}

}  // namespace

void SwitchLoraMethod::save(Checkpoint& ck) const {
  Method::save(ck);
  const std::vector<SwitchLayer>& layers = switcher.layers();
  for (int li = 0; li < (int)layers.size(); li++)
    for (bool B : {false, true}) ck.put(pool_name(layers[li], B), switcher.pools().host(li, B));
  ck.meta["switchlora"] = switcher.state();
}

void SwitchLoraMethod::load(const Checkpoint& ck, const std::string& path) {
  Method::load(ck, path);
  if (!ck.meta.contains("switchlora")) throw Error(path + ": checkpoint was not trained with --switch_lora");
  const std::vector<SwitchLayer>& layers = switcher.layers();
  for (int li = 0; li < (int)layers.size(); li++)
    for (bool B : {false, true}) {
      std::vector<float> values(ck.blob(pool_name(layers[li], B), path).size() / sizeof(float));
      ck.get(pool_name(layers[li], B), values, path);
      switcher.pools().set(li, B, values, path);
    }
  try {
    switcher.set_state(ck.meta["switchlora"]);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

void SwitchLoraMethod::metrics(nlohmann::json& m) const {
  m["switched"] = switched_;
  m["switch_interval"] = interval_;
}

std::string SwitchLoraMethod::progress() const { return " | switched " + std::to_string(switched_); }

std::vector<std::pair<std::string, std::vector<float>>> SwitchLoraMethod::sync_buffers() const {
  return {{"candidates", switcher.candidates_host()}};
}

namespace {

void read_switchlora_flags(Flags& f, TrainOptions& o, bool chosen) {
  SwitchOptions& s = o.sw;
  s.switch_lora_interval = f.get_int("switch_lora_interval", 40, "base switch interval (steps per full sweep of r)");
  s.switch_lora_descent_rate = f.get_float("switch_lora_descent_rate", 0.1f, "D = rate x num_training_steps");
  s.adam_warm_step = f.get_int("adam_warm_step", 5, "steps a switched vector's counterpart stays frozen (0 or -1: reset, no freezing)");
  if (s.adam_warm_step == -1) s.adam_warm_step = 0;  // the authors' "reset without freezing"
  s.switch_descend_type = f.get_string("switch_descend_type", "exponential", "exponential | Z");
  s.fix_switch_lora_interval = f.get_bool("fix_switch_lora_interval", "keep the switch interval constant");
  s.discontinuous_switch = f.get_bool("discontinuous_switch", "draw candidates at random instead of round robin");
  s.remain_switch_state = f.get_bool("remain_switch_state", "keep the counterpart's Adam moments and step counter on a switch");
  s.remain_switch_step_state = f.get_bool("remain_switch_step_state", "keep only the counterpart's Adam step counter");
  s.thaw_restarts_bias_correction = f.get_bool(
      "thaw_restarts_bias_correction",
      "the optimizer skips frozen vectors, so a thawed one restarts its bias correction at k = 1 (default, as the "
      "authors': their steps are counted, zero-gradient updates, so it thaws at k = adam_warm_step + 1)");
  s.offload_candidates = !f.get_bool("no_offload_candidates",
                                     "on the GPU: keep the candidate pools in device memory, not pinned host memory");
  s.num_training_steps = o.num_training_steps;
  s.seed = (uint64_t)o.seed;
  if (!chosen) {
    f.refuse({"switch_lora_interval", "switch_lora_descent_rate", "adam_warm_step", "switch_descend_type",
              "fix_switch_lora_interval", "discontinuous_switch", "remain_switch_state", "remain_switch_step_state",
              "thaw_restarts_bias_correction", "no_offload_candidates"},
             "needs --switch_lora");
    return;
  }
  // SwitchLoRA draws A and B from its candidate pools, which always use
  // SwitchLoRA's sigma_A, sigma_B; a B = 0 init would make every B switch empty.
  if (o.lora.init_lora_type != "switchlora")
    throw Error("--init_lora_type " + o.lora.init_lora_type +
                " cannot be used with --switch_lora (its candidates use the switchlora init)");
  validate_switch_options(s);  // before anything is allocated
}

ParamCounts switchlora_counts(const LlamaConfig& c, const TrainOptions& o) {
  ParamCounts n = lora_counts(c, o);
  for (const auto& [in, out] : block_linears(c)) n.candidates += c.num_hidden_layers * std::min(in, out) * (in + out);
  return n;
}

}  // namespace

SwitchLora* find_switcher(Method& m) {
  auto* s = dynamic_cast<SwitchLoraMethod*>(&m);
  return s ? &s->switcher : nullptr;
}

MethodInfo switchlora_method() {
  return {"switchlora", "SwitchLoRA: LoRA whose vectors switch with candidates", true,
          read_switchlora_flags, make_method<SwitchLoraMethod>, switchlora_counts};
}

}  // namespace switchlora
