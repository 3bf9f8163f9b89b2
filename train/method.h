// A training method (DESIGN §6b): full-rank, LoRA, SwitchLoRA, and the next
// one a reader adds. The Trainer (train/trainer.h) runs one step in the
// paper's order and knows no method by name; a method plugs in through the
// hooks below, and through one line in the list of train/methods.cpp.
//
//   forward, backward, all-reduce, clip          the Trainer
//   before_update(t)                             SwitchLoRA: switch, zero frozen grads
//   update(t, lr)                                AdamW (GaLore: projected AdamW)
//   after_update(t)                              SwitchLoRA: thaw, prefetch; ReLoRA: merge
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/checkpoint.h"
#include "model/llama.h"
#include "optim/adamw.h"

namespace switchlora {

struct TrainOptions;
class Flags;

class Method {
 public:
  // build_optimizer() must be called before the first step (the factories do).
  Method(Llama& model, const TrainOptions& opts);
  virtual ~Method() = default;

  // The hooks, in the order Trainer::train_step calls them.
  virtual void before_update(int /*step*/) {}
  virtual void update(int step, float lr);  // AdamW over build_optimizer's tensors
  virtual void after_update(int /*step*/) {}

  // Its state in checkpoints (the Trainer saves the model's tensors): the
  // optimizer's, by tensor name, plus whatever an override adds.
  virtual void save(Checkpoint& ck) const;
  virtual void load(const Checkpoint& ck, const std::string& path);
  // This step's entries for metrics.jsonl, and for the progress line.
  virtual void metrics(nlohmann::json& /*m*/) const {}
  virtual std::string progress() const { return ""; }
  // Host copies of what every rank must hold bit for bit, beyond the
  // model's parameters (SwitchLoRA's candidates).
  virtual std::vector<std::pair<std::string, std::vector<float>>> sync_buffers() const { return {}; }

  // Values its optimizer holds (plan's "optimizer state", which train
  // prints at start): AdamW's two moments; GaLore adds its projectors.
  virtual size_t optimizer_state_size() const { return optimizer_->m().size() + optimizer_->v().size(); }

  AdamW& optimizer() { return *optimizer_; }
  void build_optimizer(std::vector<AdamTensor> tensors);

 protected:
  Llama& model_;
  const TrainOptions& opts_;
  std::unique_ptr<AdamW> optimizer_;
};

// What a run costs, from the config alone (train/plan.h): counts of values.
struct ParamCounts {
  size_t trainable = 0;        // all-reduced every step
  size_t frozen = 0;           // LoRA's W: never sent
  size_t candidates = 0;       // SwitchLoRA's pools: never sent
  size_t optimizer_state = 0;  // Method::optimizer_state_size()
  size_t total() const { return trainable + frozen; }
};

// One entry of the method list.
struct MethodInfo {
  const char* name;     // --method NAME
  const char* summary;  // for --help
  bool adapters;        // the model carries LoRA adapters on a frozen W
  // Reads the method's own flags (every command calls it, so --help lists
  // them; chosen = false refuses them). Null: none.
  void (*read_flags)(Flags& f, TrainOptions& o, bool chosen);
  // Builds the method on a freshly built (or warm-started) model.
  std::unique_ptr<Method> (*make)(Llama& model, const TrainOptions& o);
  ParamCounts (*count)(const LlamaConfig& c, const TrainOptions& o);
};

// MethodInfo::make for a method class T(Llama&, const TrainOptions&).
template <class T>
std::unique_ptr<Method> make_method(Llama& model, const TrainOptions& o) {
  return std::make_unique<T>(model, o);
}

// Every method, in --help order (train/methods.cpp).
const std::vector<MethodInfo>& all_methods();
// The method called `name`; throws naming --method and listing the names.
const MethodInfo& method_info(const std::string& name);

// Counting helpers for MethodInfo::count: the 7 adapted linears of one block
// as (in, out), and the values every method trains (embeddings, lm_head, norms).
std::vector<std::pair<size_t, size_t>> block_linears(const LlamaConfig& c);
size_t always_trained(const LlamaConfig& c);

}  // namespace switchlora
