#include "tools/trainer.h"

#include <cmath>

#include "dist/sync_check.h"
#include "engine/error.h"
#include "model/export.h"
#include "model/lora.h"

namespace switchlora {

void validate_train_options(const TrainOptions& o, int world) {
  if (o.batch_size <= 0) throw Error("--batch_size must be > 0, got " + std::to_string(o.batch_size));
  if (o.max_length <= 0) throw Error("--max_length must be > 0, got " + std::to_string(o.max_length));
  if (o.num_training_steps <= 0)
    throw Error("--num_training_steps must be > 0, got " + std::to_string(o.num_training_steps));
  if (o.total_batch_size % (o.batch_size * world) != 0)
    throw Error("--total_batch_size " + std::to_string(o.total_batch_size) +
                " must be a multiple of --batch_size " + std::to_string(o.batch_size) + " x " +
                std::to_string(world) + " rank(s)");
  if (!(o.lr > 0)) throw Error("--lr must be > 0");
  if (o.eval_every < 0 || o.save_every < 0) throw Error("--eval_every and --save_every must be >= 0");
  if (o.switch_lora) validate_switch_options(o.sw);
}

namespace {

// Runs before the model is built: bad flags fail before any allocation, and
// the whole run multiplies at one precision.
const LlamaConfig& checked(const LlamaConfig& config, const TrainOptions& o, int world, Backend& be) {
  validate_train_options(o, world);
  be.set_precision(precision_from_flags(o.dtype, o.tf32));
  return config;
}

}  // namespace

Trainer::Trainer(const TrainOptions& o, const LlamaConfig& config, Communicator& comm, Backend& be)
    : opts(o), model(checked(config, o, comm.world(), be), o.lora, (uint64_t)o.seed, be), comm_(comm) {
  accum_ = opts.total_batch_size / (opts.batch_size * comm.world());
  schedule = {opts.scheduler, opts.lr, opts.warmup_steps, opts.num_training_steps, opts.min_lr_ratio};
  validate_schedule(schedule);
  std::vector<AdamTensor> op = model.params.adam_tensors();
  if (opts.switch_lora) {
    switcher = std::make_unique<SwitchLora>(model, opts.sw);
    switcher->attach(op);
  } else if (opts.lora.use_lora) {
    init_lora_adapters(model, (uint64_t)opts.seed);
  }
  AdamWConfig ac{opts.adam_beta1, opts.adam_beta2, opts.adam_eps, opts.weight_decay};
  optimizer = std::make_unique<AdamW>(ac, op, be);
  inputs_.resize((size_t)opts.batch_size * opts.max_length);
  targets_.resize(inputs_.size());
}

StepStats Trainer::train_step(const BatchFn& next_batch) {
  StepStats s;
  float* grads = model.params.trainable_grad.data();
  const size_t n = model.params.num_trainable();
  model.zero_grad();
  double loss = 0;
  for (int micro = 0; micro < accum_; micro++) {
    next_batch(inputs_.data(), targets_.data());
    loss += model.forward(inputs_.data(), targets_.data(), opts.batch_size, opts.max_length);
    model.backward(1.0f / accum_);
  }
  // Average the trainable gradients (and the loss, for logging) over ranks.
  comm_.allreduce_mean(grads, n);
  s.allreduce_bytes = comm_.world() > 1 ? n * sizeof(float) : 0;
  float mean_loss = (float)(loss / accum_);
  comm_.allreduce_mean(&mean_loss, 1);
  s.loss = mean_loss;
  s.grad_norm = clip_grad_norm(grads, n, opts.clip_grad_norm, model.be);
  if (switcher) {
    s.switched = switcher->switch_step(step_, *optimizer);
    s.switch_interval = (float)switcher->interval(step_);
    switcher->zero_frozen_grads();
  }
  s.lr = lr_at(schedule, step_);
  optimizer->step(s.lr);
  if (switcher) {
    switcher->end_step();
    switcher->prefetch(step_ + 1);  // the next step's candidates travel during its forward/backward
  }
  step_++;
  return s;
}

float Trainer::evaluate(const BatchFn& next_batch, int batches) {
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
  const std::vector<float> candidates = switcher ? switcher->candidates_host() : std::vector<float>();
  std::vector<NamedBuffer> buffers = {{"trainable parameters", trainable.data(), trainable.size()},
                                      {"frozen weights", frozen.data(), frozen.size()}};
  if (switcher) buffers.push_back({"candidates", candidates.data(), candidates.size()});
  switchlora::check_in_sync(comm_, buffers, when);
}

void Trainer::save_state(Checkpoint& ck) const {
  ck.meta["step"] = step_;
  ck.meta["config"] = nlohmann::json::parse(config_to_json(model.config));
  ck.meta["lora"] = {{"use_lora", model.lora.use_lora},
                     {"lora_rank", model.lora.lora_rank},
                     {"lora_alpha", model.lora.lora_alpha},
                     {"init_lora_type", model.lora.init_lora_type}};
  ck.put("trainable", model.params.trainable);
  ck.put("frozen", model.params.frozen);
  for (int i = 0; i < (int)optimizer->tensors().size(); i++) {
    const std::string pre = "optimizer." + optimizer->tensors()[i].name;
    ck.put(pre + ".exp_avg", optimizer->m(i));
    ck.put(pre + ".exp_avg_sq", optimizer->v(i));
    ck.put(pre + ".step", optimizer->counters(i));
  }
  if (switcher) {
    for (int li = 0; li < (int)switcher->layers().size(); li++)
      for (bool B : {false, true})
        ck.put(switcher->layers()[li].lin->name + (B ? ".lora_B" : ".lora_A") + ".candidates",
               switcher->pools().host(li, B));
    ck.meta["switchlora"] = switcher->state();
  }
}

void Trainer::load_state(const Checkpoint& ck, const std::string& path) {
  ck.get("trainable", model.params.trainable, path);
  ck.get("frozen", model.params.frozen, path);
  for (int i = 0; i < (int)optimizer->tensors().size(); i++) {
    const AdamTensor& t = optimizer->tensors()[i];
    const std::string pre = "optimizer." + t.name;
    std::vector<float> m(t.numel()), v(t.numel());
    std::vector<int64_t> counters(num_counters(t.counter, t.rows, t.cols));
    ck.get(pre + ".exp_avg", m, path);
    ck.get(pre + ".exp_avg_sq", v, path);
    ck.get(pre + ".step", counters, path);
    optimizer->set_state(i, m, v, counters, path);
  }
  if (switcher) {
    if (!ck.meta.contains("switchlora"))
      throw Error(path + ": checkpoint was not trained with --switch_lora");
    for (int li = 0; li < (int)switcher->layers().size(); li++)
      for (bool B : {false, true}) {
        const std::string name = switcher->layers()[li].lin->name + (B ? ".lora_B" : ".lora_A") + ".candidates";
        std::vector<float> values(switcher->pools().host(li, B).size());
        ck.get(name, values, path);
        switcher->pools().set(li, B, values, path);
      }
    switcher->set_state(ck.meta["switchlora"]);
  }
  step_ = ck.meta["step"].get<int>();
}

std::unique_ptr<Llama> load_model(const std::string& where, std::string* data_dir, Backend& be) {
  // An export (model/export.h) is a directory: full-rank weights, adapters merged.
  if (is_export_dir(where)) return load_export(where, data_dir, be);
  const std::string path = resolve_checkpoint(where);  // a run directory: its newest
  if (path.empty()) throw Error(where + ": no checkpoint (checkpoint_<step>.bin and 'latest') in this directory");
  const Checkpoint ck = load_checkpoint(path);
  const LlamaConfig config = config_from_json(ck.meta.at("config").dump(), path + " (config)");
  const nlohmann::json& l = ck.meta.at("lora");
  LoraOptions lora;
  lora.use_lora = l.at("use_lora").get<bool>();
  lora.lora_rank = l.at("lora_rank").get<int>();
  lora.lora_alpha = l.at("lora_alpha").get<float>();
  lora.init_lora_type = l.at("init_lora_type").get<std::string>();
  auto model = std::make_unique<Llama>(config, lora, 0, be);
  ck.get("trainable", model->params.trainable, path);
  ck.get("frozen", model->params.frozen, path);
  if (data_dir) *data_dir = ck.meta.value("data", "");
  return model;
}

}  // namespace switchlora
