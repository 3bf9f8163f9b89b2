// switchlora sample: generate text from a checkpoint.
//
// Each new token reruns the model over the whole context (no KV cache): the
// engine is built for training, and at these model sizes this is fast enough.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "data/data_tokenizer.h"
#include "engine/error.h"
#include "engine/rng.h"
#include "model/export.h"
#include "tools/commands.h"
#include "train/flags.h"
#include "train/trainer.h"

namespace switchlora {

// Draws a token from logits (V) at `temperature`, among the top_k largest
// (top_k <= 0: all). temperature 0 is greedy.
int32_t sample_token(const float* logits, int V, float temperature, int top_k, Rng& rng) {
  std::vector<int32_t> ids(V);
  for (int i = 0; i < V; i++) ids[i] = i;
  const int k = top_k > 0 ? std::min(top_k, V) : V;
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(),
                    [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  if (temperature <= 0) return ids[0];
  std::vector<double> p(k);
  double sum = 0;
  for (int i = 0; i < k; i++) sum += p[i] = std::exp((logits[ids[i]] - logits[ids[0]]) / temperature);
  double u = rng.uniform() * sum;
  for (int i = 0; i < k; i++)
    if ((u -= p[i]) <= 0) return ids[i];
  return ids[k - 1];
}

int cmd_sample(int argc, char** argv) {
  Flags f(argc, argv, "sample", "Generate text from a checkpoint.");
  const std::string path = f.get_string("checkpoint", "", "a checkpoint file, a run directory (its newest) or an export directory");
  std::string data = f.get_string("data", "", "directory with the tokenizer; default: the run's --data");
  const std::string prompt = f.get_string("prompt", "The", "text to continue");
  const int max_new = f.get_int("max_new_tokens", 100, "tokens to generate");
  const float temperature = f.get_float("temperature", 0.8f, "softmax temperature; 0 = greedy");
  const int top_k = f.get_int("top_k", 40, "sample among the k most likely tokens; 0 = all");
  const int seed = f.get_int("seed", 0, "sampling seed");
  const std::string device = f.get_string("device", "auto", "cpu | cuda | auto (cuda when a GPU is visible)");
  if (f.finish()) return 0;
  if (path.empty()) throw Error("--checkpoint is required");
  std::string trained_on;
  auto model = load_model(path, &trained_on, backend_for(device));
  // An export carries its own copy of the tokenizer.
  if (data.empty()) data = is_export_dir(path) ? path : trained_on;
  const DataTokenizer tok = DataTokenizer::load(data);
  std::vector<int32_t> ids = tok.encode(prompt);
  if (ids.empty()) ids.push_back(tok.eot_token());
  const int V = model->config.vocab_size, Tmax = model->config.max_sequence_length;
  Rng rng{(uint64_t)seed, kStreamSample, 0};
  std::vector<float> last(V);  // the logits of the last position
  // Each step prints what the new token adds to the decoded text: a
  // SentencePiece piece alone decodes without its leading space.
  std::printf("%s", prompt.c_str());
  size_t printed = tok.decode(ids).size();
  for (int i = 0; i < max_new; i++) {
    const int start = std::max(0, (int)ids.size() - Tmax);
    const int T = (int)ids.size() - start;
    model->forward(ids.data() + start, nullptr, 1, T);
    model->be.copy_and_wait(last.data(), model->logits() + (size_t)(T - 1) * V, V * sizeof(float));
    const int32_t next = sample_token(last.data(), V, temperature, top_k, rng);
    if (next == tok.eot_token()) break;
    ids.push_back(next);
    const std::string text = tok.decode(ids);
    if (text.size() > printed) std::printf("%s", text.c_str() + printed);
    printed = std::max(printed, text.size());
    std::fflush(stdout);
  }
  std::printf("\n");
  return 0;
}

}  // namespace switchlora
