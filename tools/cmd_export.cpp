// switchlora export: a checkpoint as a Hugging Face LlamaForCausalLM directory
// (model.safetensors with LoRA adapters merged, config.json, the tokenizer).
#include <cstdio>

#include "engine/error.h"
#include "model/export.h"
#include "tools/commands.h"
#include "train/flags.h"
#include "train/trainer.h"

namespace switchlora {

int cmd_export(int argc, char** argv) {
  Flags f(argc, argv, "export", "Write a checkpoint as a Hugging Face LlamaForCausalLM directory.");
  const std::string path = f.get_string("checkpoint", "", "a checkpoint file or a run directory (its newest)");
  const std::string out = f.get_string("out", "", "output directory (written whole, then renamed into place)");
  std::string data = f.get_string("data", "", "directory with encoder.json and vocab.bpe; default: the run's --data");
  if (f.finish()) return 0;
  if (path.empty()) throw Error("--checkpoint is required");
  if (out.empty()) throw Error("--out is required");
  std::string trained_on;
  auto model = load_model(path, &trained_on);
  if (data.empty()) data = trained_on;
  if (data.empty()) throw Error(path + " records no data directory; pass --data DIR with the tokenizer");
  export_model(*model, data, out);
  std::printf("exported %s -> %s (%stokenizer from %s)\n", path.c_str(), out.c_str(),
              model->lora.use_lora ? "LoRA adapters merged into W, " : "", data.c_str());
  return 0;
}

}  // namespace switchlora
