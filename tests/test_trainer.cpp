// The Trainer (train/trainer.cpp) runs every method through the same step
// and knows none by name; --warmed_up_model starts any method from a
// full-rank run's weights (a checkpoint or an HF export) with W + s B A = W0.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "engine/error.h"
#include "engine/rng.h"
#include "model/export.h"
#include "tests/reference/harness.h"
#include "tests/tiny_config.h"
#include "train/switchlora_method.h"
#include "train/trainer.h"

using namespace switchlora;

namespace {

constexpr int kB = 2, kT = 8;

TrainOptions options(const std::string& method) {
  TrainOptions o;
  o.batch_size = o.total_batch_size = kB;
  o.max_length = kT;
  o.lr = 2e-2f;
  o.num_training_steps = 6;
  o.method = method;
  o.lora = {method != "full", 4, 1.0f, "switchlora"};
  o.sw.switch_lora_interval = 2;
  o.sw.fix_switch_lora_interval = true;
  o.sw.adam_warm_step = 1;
  o.sw.num_training_steps = o.num_training_steps;
  return o;
}

// The same fixed batch every step.
struct Batch : test::FixedBatch {
  Batch() : FixedBatch(kB, kT, 21) {}
};

}  // namespace

TEST_CASE("one method-free trainer runs full-rank, LoRA and SwitchLoRA") {
  const Batch batch;
  for (const char* method : {"full", "lora", "switchlora"}) {
    INFO(method);
    SingleProcess comm;
    Trainer tr(options(method), test::tiny_config(), comm);
    const std::vector<float> frozen0 = tr.model.params.frozen.to_host();
    std::vector<float> losses;
    int switched = 0;
    for (int t = 0; t < 6; t++) {
      const StepStats s = tr.train_step(batch.fn());
      losses.push_back(s.loss);
      switched += s.method.value("switched", 0);
    }
    CHECK(losses.back() < losses.front());  // it learns the batch
    if (std::string(method) == "lora") CHECK(tr.model.params.frozen.to_host() == frozen0);  // W frozen
    if (std::string(method) == "switchlora") {
      CHECK(switched > 0);
      CHECK(tr.model.params.frozen.to_host() != frozen0);  // switches move W
    } else {
      CHECK(switched == 0);
    }
  }
}

TEST_CASE("LoRA dropout acts in training steps only, the same on every run") {
  const Batch batch;
  SingleProcess comm;
  TrainOptions dropped = options("lora");
  dropped.lora.lora_dropout = 0.5f;
  Trainer plain(options("lora"), test::tiny_config(), comm), a(dropped, test::tiny_config(), comm),
      b(dropped, test::tiny_config(), comm);
  // Evaluation sees no dropout: the same loss as without it.
  CHECK(a.evaluate(batch.fn(), 1) == plain.evaluate(batch.fn(), 1));
  const StepStats sa = a.train_step(batch.fn()), sb = b.train_step(batch.fn()), sp = plain.train_step(batch.fn());
  CHECK(sa.grad_norm != sp.grad_norm);  // training does (B starts at zero only with origin_lora)
  CHECK(sa.grad_norm == sb.grad_norm);  // and draws the same masks
  CHECK(a.model.params.trainable.to_host() == b.model.params.trainable.to_host());
}

TEST_CASE("the trainer's source names no method") {
  std::ifstream f("train/trainer.cpp");
  REQUIRE(f);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string src = ss.str();
  // "switchlora" alone is the project's namespace, not a method.
  for (size_t at; (at = src.find("switchlora")) != std::string::npos;) src.erase(at, 10);
  // o.lora is the model's shape (whether it has adapters), not a method.
  for (const char* word : {"Switch", "switch_", "init_lora", "use_lora", "lora_A", "lora_B", "galore", "GaLore",
                           "relora", "ReLoRA", "\"full\"", "\"lora\"", "\"switchlora\""}) {
    INFO(word);
    CHECK(src.find(word) == std::string::npos);
  }
}

TEST_CASE("--warmed_up_model: LoRA and SwitchLoRA start from a full-rank run with its loss at step 0") {
  const std::string dir = test::fresh_dir("warm_start");
  const Batch batch;
  SingleProcess comm;
  // A full-rank run, trained a little so its weights are not the seed's.
  Trainer full(options("full"), test::tiny_config(), comm);
  for (int t = 0; t < 4; t++) full.train_step(batch.fn());
  const float full_loss = full.model.forward(batch.in.data(), batch.tg.data(), kB, kT);
  Checkpoint ck;
  full.save_state(ck);
  save_checkpoint(dir + "/full.bin", ck);
  // The same weights as an HF export (a directory with model.safetensors).
  const std::string data = dir + "/data";
  std::filesystem::create_directories(data);
  Tokenizer::train(std::string(300, 'a') + " the jury said the city election was conducted well", 260).save(data);
  export_model(full.model, data, dir + "/export");

  for (const std::string& source : {dir + "/full.bin", dir + "/export"})
    for (const char* method : {"lora", "switchlora"}) {
      INFO(method << " from " << source);
      TrainOptions o = options(method);
      o.seed = 3;  // a seed other than the full run's: the weights must come from the source
      o.warmed_up_model = source;
      Trainer tr(o, test::tiny_config(), comm);
      const float loss = tr.model.forward(batch.in.data(), batch.tg.data(), kB, kT);
      // W = W0 - s B A in fp32 rounds at ~1e-7 relative per weight.
      CHECK(std::fabs(loss - full_loss) <= 1e-5 * std::fabs(full_loss));
      CHECK(loss == doctest::Approx(tr.train_step(batch.fn()).loss).epsilon(1e-5));  // step 0's loss
    }
}

TEST_CASE("--warmed_up_model of another shape, or a missing one, is an error naming the tensor") {
  const std::string dir = test::fresh_dir("warm_start_bad");
  SingleProcess comm;
  LlamaConfig wide = test::tiny_config();
  wide.intermediate_size = 32;
  Trainer other(options("full"), wide, comm);
  Checkpoint ck;
  other.save_state(ck);
  save_checkpoint(dir + "/wide.bin", ck);
  TrainOptions o = options("lora");
  o.warmed_up_model = dir + "/wide.bin";
  CHECK_THROWS_WITH_AS(Trainer(o, test::tiny_config(), comm), doctest::Contains("model.layers.0.mlp.gate_proj.weight"),
                       Error);
  o.warmed_up_model = dir + "/nothing_here";
  CHECK_THROWS_WITH_AS(Trainer(o, test::tiny_config(), comm), doctest::Contains("nothing_here"), Error);
}

// --non_adapter_lr: the embedding, the norms and lm_head step at their own
// peak rate on the same schedule; every block tensor exactly as before. On a
// first Adam step every change is -lr times a factor that does not depend on
// lr (m_hat / (sqrt(v_hat) + eps)), so the ratio of the changes is the ratio
// of the rates to float rounding.
TEST_CASE("--non_adapter_lr scales the updates of the embedding, norms and lm_head only") {
  const Batch batch;
  for (const char* method : {"full", "lora", "switchlora"}) {
    INFO(method);
    auto changes = [&](float non_adapter_lr) {
      TrainOptions o = options(method);
      o.non_adapter_lr = non_adapter_lr;
      SingleProcess comm;
      Trainer tr(o, test::tiny_config(), comm);
      std::vector<std::vector<float>> before, delta;
      for (const Param& p : tr.model.params.params) before.push_back(tr.model.params.get(p));
      tr.train_step(batch.fn());
      for (size_t i = 0; i < before.size(); i++) {
        std::vector<float> now = tr.model.params.get(tr.model.params.params[i]);
        for (size_t j = 0; j < now.size(); j++) now[j] -= before[i][j];
        delta.push_back(now);
      }
      std::vector<std::string> names;
      for (const Param& p : tr.model.params.params) names.push_back(p.name);
      return std::make_pair(names, delta);
    };
    const auto [names, base] = changes(0.0f);
    const auto [names3, tripled] = changes(3 * options(method).lr);
    int scaled = 0;
    for (size_t i = 0; i < names.size(); i++) {
      CAPTURE(names[i]);
      const bool block = names[i].find("_proj.") != std::string::npos;
      double num = 0, den = 0, dot = 0;
      for (size_t j = 0; j < base[i].size(); j++) {
        num += (double)tripled[i][j] * tripled[i][j];
        den += (double)base[i][j] * base[i][j];
        dot += (double)tripled[i][j] * base[i][j];
      }
      if (block) {
        CHECK(tripled[i] == base[i]);
      } else if (den > 0) {
        CHECK(std::sqrt(num / den) == doctest::Approx(3.0).epsilon(1e-3));  // 3x as large
        CHECK(dot / std::sqrt(num * den) == doctest::Approx(1.0).epsilon(1e-5));  // same direction
        scaled++;
      }
    }
    CHECK(scaled >= 4);  // embedding, lm_head, the final norm and the blocks' norms
  }
}
