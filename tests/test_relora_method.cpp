// ReLoRA (train/relora_method.cpp): a merge keeps the output, the fresh A is
// the same on every rank, the optimizer reset prunes what it says and never
// the step counts, merges and resets come when the repo's rule says, and bad
// flags are one-line errors naming the flag.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/rng.h"
#include "model/params.h"
#include "tests/reference/harness.h"
#include "tests/tiny_config.h"
#include "tests/train_flags.h"
#include "train/relora_method.h"
#include "train/trainer.h"

using namespace switchlora;

namespace {

constexpr int kB = 2, kT = 8;

TrainOptions options(int relora = 3) {
  TrainOptions o;
  o.batch_size = o.total_batch_size = kB;
  o.max_length = kT;
  o.lr = 2e-2f;
  o.num_training_steps = 12;
  o.method = "relora";
  o.lora = {true, 4, 8.0f, "origin_lora"};  // alpha 8: s = 2, so the adapters matter
  o.relora.relora = relora;
  o.cycle_length = relora;
  return o;
}

// The same fixed batch every step.
struct Batch : test::FixedBatch {
  Batch() : FixedBatch(kB, kT, 23) {}
};

std::vector<float> logits(Trainer& tr, const Batch& b) {
  tr.model.forward(b.in.data(), nullptr, kB, kT);
  return tr.model.logits_host();
}


ReLoraMethod& relora_of(Trainer& tr) { return dynamic_cast<ReLoraMethod&>(*tr.method); }

}  // namespace

TEST_CASE("a ReLoRA merge keeps the logits, resets B and draws the same A everywhere") {
  const Batch batch;
  SingleProcess comm;
  Trainer a(options(100), test::tiny_config(), comm), b(options(100), test::tiny_config(), comm);
  for (int t = 0; t < 3; t++) {
    a.train_step(batch.fn());
    b.train_step(batch.fn());
  }
  const std::vector<float> before = logits(a, batch);
  Linear& l = *a.model.linears()[0];
  const std::vector<float> A0 = a.model.params.get(*l.A);
  relora_of(a).merge_and_reinit(1);
  relora_of(b).merge_and_reinit(1);
  // fp32: W += s B A rounds at ~1e-7 relative per weight.
  INFO("relative error " << test::rel_err(logits(a, batch), before));
  CHECK(test::rel_err(logits(a, batch), before) < 1e-5);
  for (Linear* m : a.model.linears()) {
    const std::vector<float> B = a.model.params.get(*m->B);
    CHECK(std::all_of(B.begin(), B.end(), [](float x) { return x == 0.0f; }));
  }
  CHECK(a.model.params.get(*l.A) != A0);
  CHECK(a.model.params.trainable.to_host() == b.model.params.trainable.to_host());
  CHECK(a.model.params.frozen.to_host() == b.model.params.frozen.to_host());
  // Kaiming-uniform: every entry within 1 / sqrt(in).
  const std::vector<float> A1 = a.model.params.get(*l.A);
  CHECK(*std::max_element(A1.begin(), A1.end()) <= 1.0f / std::sqrt((float)l.in));
}

TEST_CASE("merges and optimizer resets come after updates relora + 1, 2 relora + 1, ...") {
  const Batch batch;
  SingleProcess comm;
  Trainer tr(options(3), test::tiny_config(), comm);
  std::vector<int> merged_at;
  for (int t = 0; t < 12; t++) {
    const StepStats s = tr.train_step(batch.fn());
    CHECK(s.method["relora_merged"] == s.method["optimizer_reset"]);  // cycle_length = relora
    if (s.method["relora_merged"] == 1) merged_at.push_back(t + 1);
  }
  CHECK(merged_at == std::vector<int>{4, 7, 10});
}

TEST_CASE("random pruning zeroes a fraction p of the adapters' moments, never a step count") {
  const Batch batch;
  SingleProcess comm;
  TrainOptions o = options(100);
  o.relora.reset_optimizer_on_relora = false;
  o.relora.optimizer_random_pruning = 0.4f;
  Trainer tr(o, test::tiny_config(), comm);
  for (int t = 0; t < 3; t++) tr.train_step(batch.fn());
  AdamW& opt = tr.method->optimizer();
  const std::vector<float> m0 = opt.m(), v0 = opt.v();
  const std::vector<int64_t> k0 = opt.counters();
  relora_of(tr).reset_optimizer(1);
  const std::vector<float> m1 = opt.m(), v1 = opt.v();
  CHECK(opt.counters() == k0);
  size_t adapter = 0, zeroed = 0, offset = 0;
  for (const AdamTensor& t : opt.tensors()) {
    for (size_t e = offset; e < offset + t.numel(); e++) {
      if (!is_adapter(t.name)) {
        CHECK(m1[e] == m0[e]);  // embeddings, norms, lm_head keep their state
        continue;
      }
      for (auto [before, after] : {std::pair{m0[e], m1[e]}, std::pair{v0[e], v1[e]}}) {
        if (before == 0.0f) continue;
        adapter++;
        if (after == 0.0f) zeroed++;
        else CHECK(after == before);
      }
    }
    offset += t.numel();
  }
  // Binomial(n, 0.4): allow 5 standard deviations.
  const double n = (double)adapter, sd = std::sqrt(n * 0.4 * 0.6);
  INFO(zeroed << " of " << adapter << " zeroed");
  CHECK(std::fabs((double)zeroed - 0.4 * n) < 5 * sd);
}

TEST_CASE("magnitude pruning zeroes exactly the entries at or below the p-quantile") {
  const Batch batch;
  SingleProcess comm;
  TrainOptions o = options(100);
  o.relora.reset_optimizer_on_relora = false;
  o.relora.optimizer_magnitude_pruning = 0.3f;
  Trainer tr(o, test::tiny_config(), comm);
  for (int t = 0; t < 3; t++) tr.train_step(batch.fn());
  AdamW& opt = tr.method->optimizer();
  std::vector<std::vector<float>> before;
  for (int i = 0; i < (int)opt.tensors().size(); i++) before.push_back(opt.v(i));
  relora_of(tr).reset_optimizer(1);
  for (int i = 0; i < (int)opt.tensors().size(); i++) {
    if (!is_adapter(opt.tensors()[i].name)) continue;
    // The 0.3-quantile by linear interpolation between sorted magnitudes.
    std::vector<float> sorted = before[i];
    std::sort(sorted.begin(), sorted.end());  // v >= 0: its magnitude
    const double pos = 0.3 * (sorted.size() - 1);
    const size_t lo = (size_t)pos;
    const float q = (float)(sorted[lo] + (pos - lo) * (sorted[lo + 1] - sorted[lo]));
    const std::vector<float> after = opt.v(i);
    for (size_t e = 0; e < after.size(); e++) {
      CAPTURE(e);
      CHECK(after[e] == (before[i][e] <= q ? 0.0f : before[i][e]));
    }
  }
}

TEST_CASE("bad ReLoRA flags are one-line errors naming the flag") {
  CHECK(test::train_flags_error({"--relora", "5"}).find("--relora") != std::string::npos);  // no adapters
  CHECK(test::train_flags_error({"--switch_lora", "--relora", "5"}).find("--relora") != std::string::npos);
  CHECK(test::train_flags_error({"--use_lora", "--relora", "1"}).find("--relora must be >= 2") != std::string::npos);
  CHECK(test::train_flags_error({"--use_lora", "--relora", "5", "--optimizer_random_pruning", "0.5",
                     "--optimizer_magnitude_pruning", "0.5"})
            .find("choose one") != std::string::npos);
  CHECK(test::train_flags_error({"--use_lora", "--relora", "5", "--reset_optimizer_on_relora", "True",
                     "--optimizer_random_pruning", "0.5"})
            .find("--reset_optimizer_on_relora") != std::string::npos);
  CHECK(test::train_flags_error({"--use_lora", "--relora", "5", "--reset_optimizer_on_relora", "False"})
            .find("--reset_optimizer_on_relora false") != std::string::npos);
  CHECK(test::train_flags_error({"--use_lora", "--relora", "5", "--optimizer_random_pruning", "1.5"})
            .find("--optimizer_random_pruning") != std::string::npos);
  CHECK(test::train_flags_error({"--use_lora", "--relora", "5", "--optimizer_random_pruning", "0.5"}).empty());
  CHECK(test::train_flags_error({"--method", "relora", "--relora", "5"}).empty());
}
