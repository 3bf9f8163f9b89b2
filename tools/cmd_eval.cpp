// switchlora eval: validation loss and perplexity of a checkpoint.
#include <cmath>
#include <cstdio>

#include "data/loader.h"
#include "engine/error.h"
#include "tools/commands.h"
#include "train/flags.h"
#include "train/trainer.h"

namespace switchlora {

int cmd_eval(int argc, char** argv) {
  Flags f(argc, argv, "eval", "Validation loss and perplexity of a checkpoint.");
  const std::string path = f.get_string("checkpoint", "", "a checkpoint file, a run directory (its newest) or an export directory");
  std::string data = f.get_string("data", "", "prepared data directory; default: the one the run trained on");
  const int B = f.get_int("batch_size", 8, "sequences per batch");
  const int T = f.get_int("max_length", 256, "sequence length");
  const int max_batches = f.get_int("max_eval_batches", 0, "cap on batches; 0 = the whole split");
  const std::string device = f.get_string("device", "auto", "cpu | cuda | auto (cuda when a GPU is visible)");
  if (f.finish()) return 0;
  if (path.empty()) throw Error("--checkpoint is required");
  std::string trained_on;
  auto model = load_model(path, &trained_on, backend_for(device));
  if (data.empty()) data = trained_on;
  DataLoader val(data, "val", B, T, 0, 1, 0, model->config.vocab_size);
  int batches = (int)(val.num_sequences() / B);
  if (max_batches > 0) batches = std::min(batches, max_batches);
  std::vector<int32_t> in((size_t)B * T), tg(in.size());
  double total = 0;
  for (int b = 0; b < batches; b++) {
    val.next_batch(in.data(), tg.data());
    total += model->forward(in.data(), tg.data(), B, T);
  }
  const double loss = total / batches;
  std::printf("val loss %.4f | val ppl %.2f | %d batches of %d x %d tokens from %s\n", loss, std::exp(loss),
              batches, B, T, data.c_str());
  return 0;
}

}  // namespace switchlora
