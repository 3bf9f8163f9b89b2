#include "model/params.h"

#include "engine/error.h"
#include "engine/rng.h"

namespace switchlora {

bool is_adapter(const std::string& name) {
  return name.ends_with(".lora_A.weight") || name.ends_with(".lora_B.weight");
}

int ParamStore::add(const std::string& name, int rows, int cols, bool is_trainable,
                    StepCounter counter) {
  SL_CHECK(trainable.data() == nullptr, "ParamStore::add after allocate");
  Param p;
  p.name = name;
  p.rows = rows;
  p.cols = cols;
  p.trainable = is_trainable;
  p.counter = counter;
  params.push_back(p);
  return (int)params.size() - 1;
}

void ParamStore::allocate(Backend& be) {
  size_t n_train = 0, n_frozen = 0;
  for (Param& p : params) {
    size_t& next = p.trainable ? n_train : n_frozen;
    p.offset = next;
    next += p.numel();
  }
  trainable = Buffer<float>(be, n_train);
  trainable_grad = Buffer<float>(be, n_train);
  frozen = Buffer<float>(be, n_frozen);
  for (Param& p : params) {
    p.data = (p.trainable ? trainable.data() : frozen.data()) + p.offset;
    p.grad = p.trainable ? trainable_grad.data() + p.offset : nullptr;
  }
}

std::vector<float> ParamStore::get(const Param& p) const {
  std::vector<float> out(p.numel());
  trainable.backend().copy_and_wait(out.data(), p.data, out.size() * sizeof(float));
  return out;
}

void ParamStore::set(Param& p, const std::vector<float>& values) {
  SL_CHECK(values.size() == p.numel(), "ParamStore::set: " + std::to_string(values.size()) +
                                           " values for " + p.name + " of " + std::to_string(p.numel()));
  trainable.backend().copy_and_wait(p.data, values.data(), values.size() * sizeof(float));
}

Param* ParamStore::find(const std::string& name) {
  for (Param& p : params)
    if (p.name == name) return &p;
  return nullptr;
}

std::vector<AdamTensor> ParamStore::adam_tensors() {
  std::vector<AdamTensor> out;
  for (Param& p : params)
    if (p.trainable) out.push_back({p.name, p.data, p.grad, p.rows, p.cols, p.counter, nullptr});
  return out;
}

namespace {

uint64_t init_stream(const Param& p) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (char c : p.name) h = (h ^ (uint8_t)c) * 0x100000001B3ull;
  return hash64(kStreamInit, h, 0);
}

}  // namespace

void fill_normal(ParamStore& ps, Param& p, uint64_t seed, float std) {
  const uint64_t stream = init_stream(p);
  std::vector<float> d(p.numel());
  const int64_t n = (int64_t)p.numel();
#pragma omp parallel for
  for (int64_t i = 0; i < n; i++) d[i] = std * normal01(seed, stream, i);
  ps.set(p, d);
}

void fill_uniform(ParamStore& ps, Param& p, uint64_t seed, float bound) {
  const uint64_t stream = init_stream(p);
  std::vector<float> d(p.numel());
  const int64_t n = (int64_t)p.numel();
#pragma omp parallel for
  for (int64_t i = 0; i < n; i++) d[i] = bound * (2.0f * uniform01(seed, stream, i) - 1.0f);
  ps.set(p, d);
}

}  // namespace switchlora
