// switchlora plan: what a run costs, before running it. For full rank and the
// chosen method side by side: parameter counts, bytes all-reduced per step
// (the trainable gradients: all each rank sends) and memory per rank.
//
// It reads train's flags, so a train command line pasted after `plan` gives
// that run's costs.
//
//   switchlora plan --model_config configs/llama_1b.json --lora_rank 512 --switch_lora --storage bf16
//   switchlora plan --model_config configs/llama_1b.json --optimizer galore_adamw --rank 512
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
  Flags f(argc, argv, "plan",
          "Parameter counts, all-reduce bytes per step and memory, for full rank and a method. Takes train's "
          "flags (paste a train command's), plus --storage; --vocab_size 0 means the config's.");
  TrainOptions o = parse_train_flags(f);  // the very flags train reads, so the counts are the run's
  const std::string storage = f.get_string(
      "storage", "fp32", "fp32 | bf16: bytes per stored value; train stores fp32 whatever its --dtype, bf16 shows a bf16-storage engine's costs");
  if (f.finish()) return 0;

  const std::string& path = o.model_config;
  if (path.empty()) throw Error("--model_config is required (e.g. configs/llama_1b.json)");
  if (storage != "fp32" && storage != "bf16") throw Error("--storage must be fp32 or bf16, got \"" + storage + "\"");
  if (o.batch_size <= 0 || o.max_length <= 0) throw Error("--batch_size and --max_length must be > 0");
  LlamaConfig c = load_config(path);
  if (o.vocab_size > 0) c.vocab_size = o.vocab_size;
  const int B = o.batch_size, T = o.max_length;
  if (T > c.max_sequence_length)
    throw Error("--max_length " + std::to_string(T) + " exceeds max_sequence_length " +
                std::to_string(c.max_sequence_length) + " of " + path);
  const int e = storage == "bf16" ? 2 : 4;

  const std::string m = o.method;
  std::vector<std::string> methods = {"full"};
  if (m != "full") methods.push_back(m);
  std::vector<ParamCounts> n;
  std::vector<MemoryPlan> mem;
  for (const std::string& x : methods) {
    TrainOptions run = o;
    run.method = x;
    n.push_back(count_parameters(c, run));
    mem.push_back(plan_memory(c, run, e));
  }
  const int r = m == "galore" ? o.galore.rank : o.lora.lora_rank;
  auto cells = [&](auto value) {
    std::vector<std::string> out;
    for (size_t i = 0; i < methods.size(); i++) out.push_back(value(i));
    return out;
  };
  auto count = [&](size_t ParamCounts::*field) {
    return cells([&](size_t i) { return std::to_string(n[i].*field); });
  };
  auto bytes = [&](double MemoryPlan::*field) { return cells([&](size_t i) { return gib(mem[i].*field); }); };

  std::printf("model %s: V=%d C=%d I=%d NH=%d L=%d | %s | %s storage | batch %d x %d tokens per rank\n\n",
              path.c_str(), c.vocab_size, c.hidden_size, c.intermediate_size, c.num_attention_heads,
              c.num_hidden_layers, m == "full" ? "full rank" : ("rank " + std::to_string(r)).c_str(),
              storage.c_str(), B, T);
  row("", cells([&](size_t i) { return methods[i]; }));
  std::printf("parameters\n");
  row("total", cells([&](size_t i) { return std::to_string(n[i].total()); }));
  row("trainable", count(&ParamCounts::trainable));
  row("frozen", count(&ParamCounts::frozen));
  row("candidates", count(&ParamCounts::candidates));
  row("optimizer state", count(&ParamCounts::optimizer_state));
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
