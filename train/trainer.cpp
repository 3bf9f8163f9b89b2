#include "train/trainer.h"

#include <cmath>
#include <cstdio>

#include "dist/sync_check.h"
#include "engine/error.h"
#include "model/export.h"
#include "model/lora.h"
#include "train/plan.h"

namespace switchlora {

namespace {

// Runs before the model is built: bad flags fail before any allocation, and
// the whole run multiplies at one precision.
const LlamaConfig& checked(const LlamaConfig& config, const TrainOptions& o, int world, Backend& be) {
  validate_train_options(o, world);
  be.set_precision(precision_from_flags(o.dtype, o.tf32));
  // The run's memory as plan computes it, before anything is allocated: a
  // config of a billion layers is an immediate error, not a crash.
  if (be.device() == Device::kCpu) {
    const MemoryPlan m = plan_memory(config, o, 4);
    const double need = m.device() + m.candidates_host;
    const double ram = host_memory_bytes();
    if (need > ram) {
      char msg[256];
      std::snprintf(msg, sizeof msg, "this run needs %.1f GiB (switchlora plan), this machine has %.1f GiB",
                    need / (1 << 30), ram / (1 << 30));
      throw Error(std::string(msg) + ": a smaller model config, --batch_size or --max_length");
    }
  }
  return config;
}

// The warm start comes first: the method's init (W = W0 - s B A) then keeps
// the warm-started model's output.
Llama& warm_started(Llama& model, const std::string& source) {
  if (!source.empty()) load_warm_start(model, source);
  return model;
}

}  // namespace

Trainer::Trainer(const TrainOptions& o, const LlamaConfig& config, Communicator& comm, Backend& be)
    : opts(o), model(checked(config, o, comm.world(), be), o.lora, (uint64_t)o.seed, be), comm_(comm) {
  method = method_info(opts.method).make(warm_started(model, opts.warmed_up_model), opts);
  accum_ = opts.total_batch_size / (opts.batch_size * comm.world());
  schedule = {opts.scheduler,    opts.lr,           opts.warmup_steps,        opts.num_training_steps,
              opts.min_lr_ratio, opts.cycle_length, opts.restart_warmup_steps};
  validate_schedule(schedule);
  inputs_.resize((size_t)opts.batch_size * opts.max_length);
  targets_.resize(inputs_.size());
}

StepStats Trainer::train_step(const BatchFn& next_batch) {
  StepStats s;
  float* grads = model.params.trainable_grad.data();
  const size_t n = model.params.num_trainable();
  Backend& be = model.be;
  be.phase("zero gradients");
  model.zero_grad();
  be.phase("forward and backward");
  double loss = 0;
  model.training = true;
  for (int micro = 0; micro < accum_; micro++) {
    model.dropout_key = (uint64_t)step_ * accum_ + micro;  // every rank and resume: the same masks
    next_batch(inputs_.data(), targets_.data());
    loss += model.forward(inputs_.data(), targets_.data(), opts.batch_size, opts.max_length);
    model.backward(1.0f / accum_);
  }
  // Average the trainable gradients (and the loss, for logging) over ranks.
  be.phase("all-reduce");
  comm_.allreduce_mean(grads, n);
  s.allreduce_bytes = comm_.world() > 1 ? n * sizeof(float) : 0;
  float mean_loss = (float)(loss / accum_);
  comm_.allreduce_mean(&mean_loss, 1);
  s.loss = mean_loss;
  be.phase("clip");
  s.grad_norm = clip_grad_norm(grads, n, opts.clip_grad_norm, model.be);
  s.lr = lr_at(schedule, step_);
  s.method = nlohmann::json::object();
  // A non-finite loss or norm (the same on every rank: both are all-reduced)
  // would poison the weights and the optimizer state: skip the step's
  // switch and update, as the authors' loop does, and count it.
  s.skipped = !std::isfinite(s.loss) || !std::isfinite(s.grad_norm);
  if (s.skipped) {
    skipped_++;
  } else {
    be.phase("before update (switch)");
    method->before_update(step_);
    be.phase("update (optimizer)");
    method->update(step_, s.lr);
    be.phase("after update (thaw, prefetch, merge)");
    method->after_update(step_);
    method->metrics(s.method);
  }
  be.phase("");
  step_++;
  return s;
}

float Trainer::evaluate(const BatchFn& next_batch, int batches) {
  model.training = false;
  double total = 0;
  for (int b = 0; b < batches; b++) {
    next_batch(inputs_.data(), targets_.data());
    total += model.forward(inputs_.data(), targets_.data(), opts.batch_size, opts.max_length);
  }
  float mean = (float)(total / std::max(1, batches));
  comm_.allreduce_mean(&mean, 1);
  return mean;
}

void Trainer::check_in_sync(const std::string& when) {
  // Hashed on the host: one copy of every parameter, every --check_sync_every steps.
  const std::vector<float> trainable = model.params.trainable.to_host(), frozen = model.params.frozen.to_host();
  const auto extra = method->sync_buffers();
  std::vector<NamedBuffer> buffers = {{"trainable parameters", trainable.data(), trainable.size()},
                                      {"frozen weights", frozen.data(), frozen.size()}};
  for (const auto& [name, values] : extra) buffers.push_back({name, values.data(), values.size()});
  switchlora::check_in_sync(comm_, buffers, when);
}

void Trainer::save_state(Checkpoint& ck) const {
  ck.meta["step"] = step_;
  ck.meta["skipped_steps"] = skipped_;
  ck.meta["method"] = opts.method;
  ck.meta["config"] = nlohmann::json::parse(config_to_json(model.config));
  ck.meta["adapters"] = lora_options_to_json(model.lora);
  for (const Param& p : model.params.params) ck.put(p.name, model.params.get(p));
  method->save(ck);
}

namespace {

void load_params(ParamStore& ps, const Checkpoint& ck, const std::string& path) {
  for (Param& p : ps.params) {
    std::vector<float> values(p.numel());
    ck.get(p.name, values, path);
    ps.set(p, values);
  }
}

}  // namespace

void Trainer::load_state(const Checkpoint& ck, const std::string& path) {
  load_params(model.params, ck, path);
  method->load(ck, path);
  const nlohmann::json step = ck.meta.value("step", nlohmann::json());
  if (!step.is_number_integer() || step.get<int64_t>() < 0 || step.get<int64_t>() > opts.num_training_steps)
    throw Error(path + ": checkpoint step " + step.dump() + " is outside this run's [0, --num_training_steps = " +
                std::to_string(opts.num_training_steps) + "]");
  step_ = step.get<int>();
  const nlohmann::json skipped = ck.meta.value("skipped_steps", nlohmann::json(0));
  if (!skipped.is_number_integer() || skipped.get<int64_t>() < 0 || skipped.get<int64_t>() > step_)
    throw Error(path + ": checkpoint skipped_steps " + skipped.dump() + " is outside [0, step = " +
                std::to_string(step_) + "]");
  skipped_ = skipped.get<int>();
}

std::unique_ptr<Llama> load_model(const std::string& where, std::string* data_dir, Backend& be) {
  // An export (model/export.h) is a directory: full-rank weights, adapters merged.
  if (is_export_dir(where)) return load_export(where, data_dir, be);
  const std::string path = resolve_checkpoint(where);  // a run directory: its newest
  if (path.empty()) throw Error(where + ": no checkpoint (checkpoint_<step>.bin and 'latest') in this directory");
  const Checkpoint ck = load_checkpoint(path);
  if (data_dir) *data_dir = ck.meta.value("data", "");
  return model_from_checkpoint(ck, path, be);
}

std::unique_ptr<Llama> model_from_checkpoint(const Checkpoint& ck, const std::string& path, Backend& be) {
  if (!ck.meta.is_object() || !ck.meta.contains("config") || !ck.meta.contains("adapters"))
    throw Error(path + ": checkpoint has no model config or adapters' shape in its header (not a training checkpoint?)");
  const LlamaConfig config = config_from_json(ck.meta.at("config").dump(), path + " (config)");
  auto model = std::make_unique<Llama>(config, lora_options_from_json(ck.meta.at("adapters"), path), 0, be);
  load_params(model->params, ck, path);
  return model;
}

void load_warm_start(Llama& model, const std::string& source) {
  // Any run's weights as the full-rank model they compute (adapters merged).
  std::unique_ptr<Llama> from;
  try {
    from = load_model(source);
  } catch (const Error& e) {
    throw Error(std::string("--warmed_up_model: ") + e.what());
  }
  const std::vector<NamedTensor> weights = merged_tensors(*from);
  for (Param& p : model.params.params) {
    if (is_adapter(p.name)) continue;  // the method initialises its own
    const NamedTensor* t = nullptr;
    for (const NamedTensor& w : weights)
      if (w.name == p.name) t = &w;
    if (!t) throw Error("--warmed_up_model " + source + ": has no tensor " + p.name);
    const std::vector<int64_t> want = p.rows == 1 ? std::vector<int64_t>{p.cols} : std::vector<int64_t>{p.rows, p.cols};
    if (t->shape != want)
      throw Error("--warmed_up_model " + source + ": " + p.name + " has shape " + nlohmann::json(t->shape).dump() +
                  ", this model needs " + nlohmann::json(want).dump());
    model.params.set(p, t->data);
  }
}

}  // namespace switchlora
