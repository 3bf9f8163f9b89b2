// switchlora: pre-train LLaMA models with SwitchLoRA, LoRA or full rank.
#include <cstdio>
#include <cstring>
#include <string>

#include "dist/communicator.h"
#include "engine/error.h"
#include "tools/commands.h"

namespace {

const char* kUsage =
    "usage: switchlora <command> [flags]   (switchlora <command> --help for its flags)\n"
    "\n"
    "commands:\n"
    "  prepare   build a tokenizer and token shards from a corpus (make data)\n"
    "  train     pre-train: full-rank, LoRA, SwitchLoRA, ReLoRA or GaLore (--method)\n"
    "  eval      validation loss and perplexity of a checkpoint\n"
    "  sample    generate text from a checkpoint\n"
    "  bench     time training steps on random tokens\n"
    "  export    a checkpoint as a Hugging Face LlamaForCausalLM directory\n"
    "  plan      parameter counts, all-reduce bytes and memory of a config and method\n"
    "  inspect   singular values and effective rank of each layer's learned update\n"
    "  plot      loss against tokens for one or several runs (PNG)\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace switchlora;
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::printf("%s", kUsage);
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  // Subcommands see their own flags only.
  int sub_argc = argc - 2;
  char** sub_argv = argv + 2;
  // train's communicator is made first (under mpirun it calls MPI_Init) and
  // outlives the try, so a failing rank can still take the others down.
  std::unique_ptr<Communicator> comm;
  try {
    if (cmd == "train") {
      comm = make_communicator(&argc, &argv);
      return cmd_train(sub_argc, sub_argv, *comm);
    }
    if (cmd == "prepare") return cmd_prepare(sub_argc, sub_argv);
    if (cmd == "eval") return cmd_eval(sub_argc, sub_argv);
    if (cmd == "sample") return cmd_sample(sub_argc, sub_argv);
    if (cmd == "bench") return cmd_bench(sub_argc, sub_argv);
    if (cmd == "export") return cmd_export(sub_argc, sub_argv);
    if (cmd == "plan") return cmd_plan(sub_argc, sub_argv);
    if (cmd == "inspect") return cmd_inspect(sub_argc, sub_argv);
    if (cmd == "plot") return cmd_plot(sub_argc, sub_argv);
    std::fprintf(stderr, "switchlora: error: unknown command \"%s\"\n%s", cmd.c_str(), kUsage);
    return 2;
  } catch (const CollectiveError& e) {
    // Every rank failed the same check together: one message, a normal exit.
    if (!comm || comm->rank() == 0) std::fprintf(stderr, "switchlora: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    if (comm && comm->world() > 1) {
      // Failed alone: the other ranks may be waiting for this one in a collective.
      std::fprintf(stderr, "switchlora: error: rank %d: %s\n", comm->rank(), e.what());
      std::fflush(stderr);
      comm->abort(2);
    }
    std::fprintf(stderr, "switchlora: error: %s\n", e.what());
    return 2;
  }
}
