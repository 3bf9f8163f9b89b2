#include "train/relora_method.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "engine/rng.h"
#include "model/lora.h"
#include "train/flags.h"
#include "train/lora_method.h"
#include "train/options.h"

namespace switchlora {

ReLoraMethod::ReLoraMethod(Llama& model, const TrainOptions& o)
    : Method(model, o), every_(o.relora.relora), cycle_(o.cycle_length > 0 ? o.cycle_length : o.relora.relora) {
  if (every_ < 2) throw Error("--relora must be >= 2 (steps between merges), got " + std::to_string(every_));
  init_lora_adapters(model, (uint64_t)o.seed);  // ReLoRA's default init: origin_lora (A Kaiming, B = 0)
  build_optimizer(model.params.adam_tensors());
}

void ReLoraMethod::after_update(int t) {
  // u: updates done so far, the repo's update_step after its increment.
  const int u = t + 1;
  merged_ = u > every_ && u % every_ == 1;
  if (merged_) merge_and_reinit(u / every_);
  reset_ = u > cycle_ && u % cycle_ == 1;
  if (reset_) reset_optimizer(u / cycle_);
}

// W += s B A keeps the output; the fresh A ~ U(+-sqrt(3) gain / sqrt(in))
// with gain^2 = 1/3 (Kaiming-uniform, a = sqrt(5)) and B = 0 keep it too.
// A's numbers come from (seed, merge n, the layer's name): every rank draws
// the same, and a resumed run the same as an uninterrupted one.
void ReLoraMethod::merge_and_reinit(int n) {
  const uint64_t seed = hash64((uint64_t)opts_.seed, kStreamReLora, 2 * (uint64_t)n);
  for (Linear* l : model_.linears()) {
    merge_adapter(model_.be, *l, +1.0f);
    fill_uniform(model_.params, *l->A, seed, 1.0f / std::sqrt((float)l->in));
    model_.params.set(*l->B, std::vector<float>(l->B->numel(), 0.0f));
  }
}

namespace {

// torch.quantile's linear interpolation between the sorted values.
float quantile(std::vector<float> x, double p) {
  std::sort(x.begin(), x.end());
  const double pos = p * (double)(x.size() - 1);
  const size_t lo = (size_t)pos;
  const double frac = pos - (double)lo;
  return lo + 1 < x.size() ? (float)(x[lo] + frac * (x[lo + 1] - x[lo])) : x[lo];
}

}  // namespace

// Each of an adapter's two moments, on the host: entries zeroed at random
// (mask from (seed, reset n, tensor, moment, entry)) or at or below the
// p-quantile of their magnitudes. The step counts are never touched.
void ReLoraMethod::reset_optimizer(int n) {
  const ReLoraOptions& r = opts_.relora;
  const bool random = r.reset_optimizer_on_relora || r.optimizer_random_pruning > 0;
  const double p = r.reset_optimizer_on_relora ? 0.999 : random ? r.optimizer_random_pruning : r.optimizer_magnitude_pruning;
  const uint64_t seed = hash64((uint64_t)opts_.seed, kStreamReLora, 2 * (uint64_t)n + 1);
  AdamW& opt = *optimizer_;
  for (int i = 0; i < (int)opt.tensors().size(); i++) {
    if (!is_adapter(opt.tensors()[i].name)) continue;
    std::vector<float> moments[2] = {opt.m(i), opt.v(i)};
    for (int k = 0; k < 2; k++) {
      std::vector<float>& x = moments[k];
      if (random) {
        for (size_t e = 0; e < x.size(); e++)
          if (uniform01(seed, 2 * (uint64_t)i + k, e) <= p) x[e] = 0.0f;  // torch: keep where rand > p
      } else {
        std::vector<float> magnitude(x.size());
        for (size_t e = 0; e < x.size(); e++) magnitude[e] = std::fabs(x[e]);
        const float threshold = quantile(magnitude, p);
        for (size_t e = 0; e < x.size(); e++)
          if (magnitude[e] <= threshold) x[e] = 0.0f;
      }
    }
    opt.set_state(i, moments[0], moments[1], opt.counters(i), "ReLoRA's optimizer reset");
  }
}

void ReLoraMethod::metrics(nlohmann::json& m) const {
  m["relora_merged"] = merged_ ? 1 : 0;
  m["optimizer_reset"] = reset_ ? 1 : 0;
}

std::string ReLoraMethod::progress() const {
  return merged_ ? " | merged" : reset_ ? " | optimizer reset" : "";
}

namespace {

bool parse_bool(const std::string& flag, const std::string& v) {
  if (v == "true" || v == "True" || v == "1") return true;
  if (v == "false" || v == "False" || v == "0") return false;
  throw Error("flag --" + flag + " expects true or false, got \"" + v + "\"");
}

void read_relora_flags(Flags& f, TrainOptions& o, bool chosen) {
  ReLoraOptions& r = o.relora;
  r.relora = f.get_int("relora", 0, "ReLoRA: merge the adapters into W and restart them every N steps (with --use_lora)");
  r.reset_optimizer_on_relora = parse_bool(
      "reset_optimizer_on_relora",
      f.get_string("reset_optimizer_on_relora", "true", "ReLoRA: at each cycle, prune 99.9% of the adapters' Adam moments"));
  r.optimizer_random_pruning = f.get_float("optimizer_random_pruning", 0.0f, "ReLoRA: instead prune this fraction at random");
  r.optimizer_magnitude_pruning =
      f.get_float("optimizer_magnitude_pruning", 0.0f, "ReLoRA: instead prune this fraction of smallest magnitude");
  if (!chosen) {
    f.refuse({"relora", "reset_optimizer_on_relora", "optimizer_random_pruning", "optimizer_magnitude_pruning"},
             "needs adapters: --use_lora --relora N (or --method relora)");
    return;
  }
  if (r.relora < 2) throw Error("--relora must be >= 2 (steps between merges), got " + std::to_string(r.relora));
  // Exactly one kind of reset, as the repo insists; a pruning flag alone
  // replaces the default reset.
  const bool random = r.optimizer_random_pruning > 0, magnitude = r.optimizer_magnitude_pruning > 0;
  if (random || magnitude) {
    if (f.has("reset_optimizer_on_relora") && r.reset_optimizer_on_relora)
      throw Error("--reset_optimizer_on_relora true and --optimizer_" + std::string(random ? "random" : "magnitude") +
                  "_pruning: choose one kind of optimizer reset");
    r.reset_optimizer_on_relora = false;
  }
  if (random && magnitude)
    throw Error("--optimizer_random_pruning and --optimizer_magnitude_pruning: choose one kind of optimizer reset");
  for (float p : {r.optimizer_random_pruning, r.optimizer_magnitude_pruning})
    if (!(p >= 0.0f && p < 1.0f))
      throw Error("--optimizer_random_pruning and --optimizer_magnitude_pruning must be in [0, 1), got " +
                  std::to_string(p));
  if (!r.reset_optimizer_on_relora && !random && !magnitude)
    throw Error("--reset_optimizer_on_relora false needs --optimizer_random_pruning or --optimizer_magnitude_pruning");
  if (o.cycle_length == 0) o.cycle_length = r.relora;  // the repo's scripts set them equal
  if (!f.has("init_lora_type")) o.lora.init_lora_type = "origin_lora";  // the repo's LoRA init
}

}  // namespace

MethodInfo relora_method() {
  return {"relora", "ReLoRA: LoRA merged into W and restarted every --relora steps", true,
          read_relora_flags, make_method<ReLoraMethod>, lora_counts};
}

}  // namespace switchlora
