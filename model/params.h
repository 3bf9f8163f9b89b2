// Parameters, carved out of a few big buffers (llm.c's one-buffer layout).
//
// Trainable parameters (full-rank weights, or LoRA adapters plus embeddings,
// lm_head and norms) live contiguously in `trainable`, their gradients in
// `trainable_grad` with the same layout: one all-reduce and one optimizer step
// cover exactly them. Frozen weights (LoRA's W) live in `frozen` and have no
// gradient. SwitchLoRA's candidate pools live elsewhere (model/switchlora.h).
// All three are backend memory (device memory on the GPU): Param::data and
// Param::grad are backend pointers, for the ops, never for host code.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "optim/adamw.h"

namespace switchlora {

struct Param {
  std::string name;        // HF LlamaForCausalLM name, e.g. "lm_head.weight"
  int rows = 1, cols = 1;  // (rows, cols) row-major; 1-D tensors have rows = 1
  bool trainable = true;
  StepCounter counter = StepCounter::kPerTensor;  // per row of A, per column of B
  size_t offset = 0;       // in floats, into its buffer
  float* data = nullptr;
  float* grad = nullptr;   // nullptr when frozen
  size_t numel() const { return (size_t)rows * cols; }
};

// LoRA's A or B (model/lora.h), by its name: "<module>.lora_A.weight" etc.
bool is_adapter(const std::string& name);

struct ParamStore {
  std::vector<Param> params;
  Buffer<float> trainable, trainable_grad, frozen;

  // Planning: returns the index of the new parameter. Call allocate() once
  // after the last add(); the Param pointers are stable from then on.
  int add(const std::string& name, int rows, int cols, bool trainable,
          StepCounter counter = StepCounter::kPerTensor);
  void allocate(Backend& be);

  Param& operator[](int i) { return params[i]; }
  const Param& operator[](int i) const { return params[i]; }
  Param* find(const std::string& name);
  size_t num_trainable() const { return trainable.size(); }
  size_t num_frozen() const { return frozen.size(); }
  // One parameter's values, to or from the host (these wait).
  std::vector<float> get(const Param& p) const;
  void set(Param& p, const std::vector<float>& values);
  // Every trainable parameter, for AdamW.
  std::vector<AdamTensor> adam_tensors();
};

// Random init on the host (the same numbers on every backend), copied to p.
// The stream is keyed by p's name, so a weight draws the same values whatever
// else the model holds: W0 of a LoRA model equals W of the full-rank model
// built from the same seed.
void fill_normal(ParamStore& ps, Param& p, uint64_t seed, float std);      // N(0, std^2)
void fill_uniform(ParamStore& ps, Param& p, uint64_t seed, float bound);  // U(-bound, bound)

}  // namespace switchlora
