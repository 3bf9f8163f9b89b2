// switchlora plan: what a run costs, before running it. For full rank and the
// chosen method side by side: parameter counts, bytes all-reduced per step
// (the trainable gradients: all each rank sends) and memory per rank.
//
//   switchlora plan --model_config configs/llama_1b.json --lora_rank 512 --switch_lora --storage bf16
#include <cstdio>
#include <vector>

#include "engine/error.h"
#include "tools/commands.h"
#include "train/flags.h"
#include "train/options.h"
#include "train/plan.h"

namespace switchlora {

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

void row(const char* label, const std::vector<std::string>& cells) {
  std::printf("  %-22s", label);
  for (const std::string& c : cells) std::printf(" %20s", c.c_str());
  std::printf("\n");
}

std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / kGiB);
  return buf;
}

}  // namespace

int cmd_plan(int argc, char** argv) {
  Flags f(argc, argv, "plan", "Parameter counts, all-reduce bytes per step and memory, for full rank and a method.");
  const std::string path = f.get_string("model_config", "", "model config JSON, e.g. configs/llama_1b.json");
  const int vocab_size = f.get_int("vocab_size", 0, "vocabulary size; 0 = the config's");
  std::string method = read_method(f);
  const bool galore = f.get_bool("galore", "= --method galore: full-rank weights, Adam on rank-r gradient projections");
  const int r = f.get_int("lora_rank", 128, "LoRA rank r (GaLore: the projection rank)");
  const int B = f.get_int("batch_size", 8, "sequences per micro-batch per rank");
  const int T = f.get_int("max_length", 256, "sequence length T");
  const std::string storage = f.get_string(
      "storage", "fp32", "fp32 | bf16: bytes per stored value; train stores fp32 whatever its --dtype, bf16 shows a bf16-storage engine's costs");
  const bool on_device = f.get_bool("no_offload_candidates", "SwitchLoRA's candidates in device memory (train's flag)");
  if (f.finish()) return 0;

  if (path.empty()) throw Error("--model_config is required (e.g. configs/llama_1b.json)");
  if (galore && method != "full") throw Error("choose one of --use_lora, --switch_lora, --galore");
  if (galore) method = "galore";
  const std::string m = method;
  if (m == "full" && f.has("lora_rank")) throw Error("--lora_rank needs --use_lora, --switch_lora or --galore");
  if (storage != "fp32" && storage != "bf16") throw Error("--storage must be fp32 or bf16, got \"" + storage + "\"");
  if (on_device && m != "switchlora") throw Error("--no_offload_candidates needs --switch_lora");
  if (B <= 0 || T <= 0) throw Error("--batch_size and --max_length must be > 0");
  LlamaConfig c = load_config(path);
  if (vocab_size > 0) c.vocab_size = vocab_size;
  if (T > c.max_sequence_length)
    throw Error("--max_length " + std::to_string(T) + " exceeds max_sequence_length " +
                std::to_string(c.max_sequence_length) + " of " + path);
  const int e = storage == "bf16" ? 2 : 4;

  std::vector<std::string> methods = {"full"};
  if (m != "full") methods.push_back(m);
  std::vector<ParamCounts> n;
  std::vector<MemoryPlan> mem;
  for (const std::string& x : methods) {
    n.push_back(count_parameters(c, x, r));
    mem.push_back(plan_memory(c, x, r, B, T, e, on_device));
  }
  auto cells = [&](auto value) {
    std::vector<std::string> out;
    for (size_t i = 0; i < methods.size(); i++) out.push_back(value(i));
    return out;
  };
  auto count = [&](size_t ParamCounts::*field) {
    return cells([&](size_t i) { return std::to_string(n[i].*field); });
  };
  auto bytes = [&](double MemoryPlan::*field) { return cells([&](size_t i) { return gib(mem[i].*field); }); };

  std::printf("model %s: V=%d C=%d I=%d NH=%d L=%d | rank %d | %s storage | batch %d x %d tokens per rank\n\n",
              path.c_str(), c.vocab_size, c.hidden_size, c.intermediate_size, c.num_attention_heads,
              c.num_hidden_layers, r, storage.c_str(), B, T);
  row("", cells([&](size_t i) { return methods[i]; }));
  std::printf("parameters\n");
  row("total", cells([&](size_t i) { return std::to_string(n[i].total()); }));
  row("trainable", count(&ParamCounts::trainable));
  row("frozen", count(&ParamCounts::frozen));
  row("candidates", count(&ParamCounts::candidates));
  std::printf("all-reduce per optimizer step (trainable gradients)\n");
  row("bytes", cells([&](size_t i) { return std::to_string(n[i].trainable * e); }));
  row("of full-rank's", cells([&](size_t i) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * n[i].trainable / n[0].trainable);
        return std::string(buf);
      }));
  std::printf("memory per rank\n");
  row("weights", bytes(&MemoryPlan::weights));
  row("gradients", bytes(&MemoryPlan::gradients));
  row("optimizer state", bytes(&MemoryPlan::optimizer));
  row("candidates on device", bytes(&MemoryPlan::candidates_device));
  row("candidates on host", bytes(&MemoryPlan::candidates_host));
  row("activations", bytes(&MemoryPlan::activations));
  row("device total", cells([&](size_t i) { return gib(mem[i].device()); }));
  if (m != "full")
    std::printf("\n%s all-reduces %.1f%% fewer bytes per step than full-rank\n", m.c_str(),
                100.0 * (1.0 - (double)n[1].trainable / n[0].trainable));
  return 0;
}

}  // namespace switchlora
