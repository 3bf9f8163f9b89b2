// safetensors files and the Hugging Face export of a model.
//
// safetensors (https://github.com/huggingface/safetensors), all little-endian:
//   u64 N | N bytes of JSON header | raw tensor data
//   header: {"NAME": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//            "__metadata__": {"key": "value", ...}}
//   data_offsets count from the first byte after the header; we pad the
//   header with spaces so the data starts 8-byte aligned.
//
// An export is a directory that HF's LlamaForCausalLM.from_pretrained reads:
//   model.safetensors   every weight under its HF name, float32; LoRA
//                       adapters merged into their layer, W + s B A
//   config.json         config_to_json (model/config.h)
//   encoder.json, vocab.bpe   the run's tokenizer (data/data_tokenizer.h): BPE,
//   or meta.json, sentencepiece.model   SentencePiece (prepare --jsonl)
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/llama.h"

namespace switchlora {

struct NamedTensor {
  std::string name;
  std::vector<int64_t> shape;  // row-major; {} is a scalar
  std::vector<float> data;
};

using TensorMetadata = std::map<std::string, std::string>;

// Writes F32 tensors atomically, in the order given.
void save_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const TensorMetadata& metadata = {});
// Reads every tensor, widening or narrowing F16, BF16 and F64 to float.
// Errors name the file, the tensor and what is wrong with it.
std::vector<NamedTensor> load_safetensors(const std::string& path, TensorMetadata* metadata = nullptr);

// Every parameter as the engine holds it: trainable and frozen, LoRA
// adapters as <module>.lora_A.weight / .lora_B.weight next to <module>.weight.
std::vector<NamedTensor> model_tensors(const Llama& model);
// The weights of HF's LlamaForCausalLM: adapters folded in, W + s B A.
std::vector<NamedTensor> merged_tensors(const Llama& model);

// Writes the export into a temporary directory, then renames it to out_dir
// (or swaps the two atomically when out_dir exists). An existing out_dir is
// replaced only when it is an export itself or empty.
// data_dir holds the tokenizer; it is recorded in the weights' metadata so
// that `eval` of the export finds the run's validation split.
void export_model(const Llama& model, const std::string& data_dir, const std::string& out_dir);

// True when path is a directory with model.safetensors and config.json.
bool is_export_dir(const std::string& path);
// A full-rank model from an export (ours or any HF LLaMA with these names).
// data_dir, when given, receives the data directory recorded at export ("" if none).
std::unique_ptr<Llama> load_export(const std::string& dir, std::string* data_dir = nullptr,
                                   Backend& be = cpu_backend());

}  // namespace switchlora
