// switchlora plan (train/plan.h, tools/cmd_plan.cpp): counts by hand for 1B,
// agreement with the parameters the model really builds, the memory formulas,
// and the CLI against what `train` reports at start.
#include <doctest/doctest.h>

#include <regex>

#include "dist_cli.h"
#include "model/llama.h"
#include "model/switchlora.h"
#include "tests/tiny_config.h"
#include "train/galore_method.h"
#include "train/options.h"
#include "train/plan.h"

using namespace switchlora;
using test::small_config;

namespace {

// A run of `method` at rank r (LoRA's or GaLore's), batch B x T.
TrainOptions run(const std::string& method, int r, int B = 8, int T = 256) {
  TrainOptions o;
  o.method = method;
  o.lora.use_lora = method_info(method).adapters;
  o.lora.lora_rank = o.galore.rank = r;
  o.batch_size = B;
  o.max_length = T;
  return o;
}

// The first integer after `label` in `text`, or -1.
long long number_after(const std::string& text, const std::string& label) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex(label + R"([ :,]+(\d+))"))) return -1;
  return std::stoll(m[1]);
}

}  // namespace

TEST_CASE("plan counts for llama_1b at rank 512 match the hand count and cut communication by 54%") {
  const LlamaConfig c = load_config("configs/llama_1b.json");
  // V = 32100, C = 2048, I = 5461, L = 24, r = 512.
  // Always trained: embed + lm_head 2 V C = 131,481,600; norms (2L + 1) C = 100,352.
  // Per block, W: q,k,v,o 4 C^2 = 16,777,216; gate, up, down 3 C I = 33,552,384.
  const size_t always = 131481600ull + 100352ull;
  const size_t W = 24ull * (16777216ull + 33552384ull);  // 1,207,910,400
  // LoRA per block: r (in + out): 4 x 512 x 4096 + 3 x 512 x 7509 = 19,922,432.
  const size_t adapters = 24ull * 19922432ull;
  // Candidates per block: min(in, out) (in + out): 4 x 2048 x 4096 + 3 x 2048 x 7509 = 79,689,728.
  const size_t candidates = 24ull * 79689728ull;

  const ParamCounts full = count_parameters(c, run("full", 512));
  CHECK(full.trainable == always + W);
  CHECK(full.trainable == 1339492352ull);
  CHECK(full.frozen == 0);
  CHECK(full.candidates == 0);
  const ParamCounts sw = count_parameters(c, run("switchlora", 512));
  CHECK(sw.trainable == always + adapters);
  CHECK(sw.trainable == 609720320ull);
  CHECK(sw.frozen == W);
  CHECK(sw.candidates == candidates);
  CHECK(sw.candidates == 1912553472ull);
  CHECK(sw.total() == 1817630720ull);
  const ParamCounts lora = count_parameters(c, run("lora", 512));
  CHECK(lora.trainable == sw.trainable);
  CHECK(lora.candidates == 0);
  const ParamCounts galore = count_parameters(c, run("galore", 512));
  CHECK(galore.trainable == full.trainable);
  // The paper: 54% less communication than full rank for 1.3B at rank 512.
  const double cut = 1.0 - (double)sw.trainable / full.trainable;
  CHECK(cut == doctest::Approx(0.545).epsilon(0.002));

  // And the CLI prints exactly these numbers.
  const auto r = test::run_command(test::bin() +
                                   " plan --model_config configs/llama_1b.json --lora_rank 512 --switch_lora --storage bf16");
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(r.output.find("1339492352") != std::string::npos);
  CHECK(r.output.find("609720320") != std::string::npos);
  CHECK(r.output.find("1207910400") != std::string::npos);
  CHECK(r.output.find("1912553472") != std::string::npos);
  CHECK(r.output.find(std::to_string(2ull * 1339492352ull)) != std::string::npos);  // bf16 all-reduce bytes
  CHECK(r.output.find(std::to_string(2ull * 609720320ull)) != std::string::npos);
  CHECK(r.output.find("54.5% fewer bytes") != std::string::npos);
}

TEST_CASE("plan counts agree with the parameters, pools and optimizer state each method allocates") {
  struct Case {
    LlamaConfig c;
    int r;
  };
  // Square-ish, I < C (so min(in, out) flips for the MLP), odd sizes, more layers.
  const Case cases[] = {{small_config(64, 176, 4, 2, 300), 8},
                        {small_config(48, 40, 4, 1, 77), 5},
                        {small_config(36, 100, 3, 3, 131), 1}};
  for (const Case& k : cases) {
    for (std::string m : {"full", "lora", "switchlora", "relora", "galore std", "galore reverse_std",
                          "galore left", "galore right", "galore full"}) {
      INFO("C=", k.c.hidden_size, " I=", k.c.intermediate_size, " method ", m);
      TrainOptions o = run(m.substr(0, m.find(' ')), k.r);
      if (m.starts_with("galore")) o.galore.proj_type = m.substr(7);
      o.relora.relora = 5;
      Llama model(k.c, o.lora, 1);
      const std::unique_ptr<Method> method = method_info(o.method).make(model, o);
      size_t candidates = 0;
      for (const auto& [name, values] : method->sync_buffers()) candidates += values.size();
      const ParamCounts n = count_parameters(k.c, o);
      CHECK(n.optimizer_state == method->optimizer_state_size());
      CHECK(n.trainable == model.params.num_trainable());
      CHECK(n.frozen == model.params.num_frozen());
      CHECK(n.total() == model.num_parameters());
      CHECK(n.candidates == candidates);
    }
  }
}

TEST_CASE("GaLore's optimizer state is its moments plus the projectors and buffers it allocates") {
  const LlamaConfig c = small_config(64, 176, 4, 2, 300);
  const int r = 8;
  for (const std::string type : {"std", "full"}) {
    INFO(type);
    Llama model(c, LoraOptions{}, 1);
    TrainOptions o = run("galore", r);
    o.galore.proj_type = type;
    const std::unique_ptr<Method> method = method_info("galore").make(model, o);
    // Per weight: U (m, r) and/or Vh (r, n); R and N in the moments' shape; S (r, n) for full.
    size_t buffers = 0;
    for (const GaloreMethod::Projected& p : dynamic_cast<GaloreMethod&>(*method).projected()) {
      const size_t m = p.lin->out, n = p.lin->in;
      buffers += (p.U ? m * r : 0) + (p.Vh ? r * n : 0) + 2 * (size_t)p.rows * p.cols + (p.U && p.Vh ? r * n : 0);
    }
    const AdamW& opt = method->optimizer();
    CHECK(method->optimizer_state_size() == opt.m().size() + opt.v().size() + buffers);
    CHECK(count_parameters(c, o).trainable == model.params.num_trainable());
  }
}

TEST_CASE("plan memory: bytes per value times the counts, GaLore's projected state, the activation arena") {
  const LlamaConfig c = small_config(64, 176, 4, 2, 300);
  const int r = 8, B = 2, T = 16;
  const ParamCounts n = count_parameters(c, run("switchlora", r));
  TrainOptions o = run("switchlora", r, B, T);
  const MemoryPlan host = plan_memory(c, o, 2);
  CHECK(host.weights == 2.0 * n.total());
  CHECK(host.gradients == 2.0 * n.trainable);
  CHECK(host.optimizer == 4.0 * n.trainable);  // two moments
  CHECK(host.candidates_host == 2.0 * n.candidates);
  CHECK(host.candidates_device == 0);
  o.sw.offload_candidates = false;
  const MemoryPlan dev = plan_memory(c, o, 2);
  CHECK(dev.candidates_device == 2.0 * n.candidates);
  CHECK(dev.device() == host.device() + 2.0 * n.candidates);

  // Activations, N = 32 rows, C = 64, I = 176, NH = 4, V = 300, r = 8, L = 2:
  // per block 8NC + 2N + N NH + 3NI + 7Nr = 16384 + 64 + 128 + 16896 + 1792 = 35264;
  // final 2NC + 3N + NV = 4096 + 96 + 9600 = 13792;
  // scratch 8NC + 3NI + Nr + CI (the merged W + s B A) = 16384 + 16896 + 256 + 11264 = 44800.
  CHECK(host.activations == 2.0 * (2 * 35264 + 13792 + 44800));
  // LoRA dropout adds drop(x) and its dx, N x max(C, I) each.
  o.lora.lora_dropout = 0.1f;
  CHECK(plan_memory(c, o, 2).activations == host.activations + 2.0 * 2 * 32 * 176);

  // GaLore at r = 8, std: per block q,k,v,o (64 x 64) hold m, v, R, N of 64 x 8 and
  // Vh (8 x 64): 4 x 512 + 512 = 2560 each; gate, up (176 x 64) 4 x 1408 + 512 = 6144
  // each, down (64 x 176, left) 4 x 1408 + U 512 = 6144: 28672 per block;
  // embeddings, lm_head and norms keep two moments: 2 (2 x 300 x 64 + 5 x 64) = 77440.
  const MemoryPlan g = plan_memory(c, run("galore", r, B, T), 4);
  CHECK(g.optimizer == 4.0 * (2 * 28672 + 77440));
}

TEST_CASE("plan given train's command line prints the counts train reports at start") {
  const std::string data = test::make_tiny_data("plan_data");
  for (const std::string method : {"", " --use_lora --lora_rank 8", " --switch_lora --lora_rank 8",
                                   " --use_lora --relora 5 --lora_rank 8 --lora_dropout 0.1",
                                   " --optimizer galore_adamw --rank 4", " --method galore --rank 4 --proj_type full"}) {
    INFO("method:", method);
    // The same flags for both: plan reads train's.
    const std::string flags = " --model_config configs/llama_tiny.json" + method + " --data " + data +
                              " --batch_size 2 --max_length 16 --num_training_steps 1 --eval_every 0"
                              " --max_eval_batches 1 --save_dir " + data + "/run";
    const auto train = test::run_command(test::bin() + " train" + flags);
    INFO(train.output);
    REQUIRE(train.status == 0);
    const auto plan = test::run_command(test::bin() + " plan" + flags + " --vocab_size 300");
    INFO(plan.output);
    REQUIRE(plan.status == 0);
    // plan's second column is the method's (the first is full rank).
    auto method_column = [&](const std::string& label) {
      std::smatch m;
      REQUIRE(std::regex_search(plan.output, m, std::regex("  " + label + R"( +(\d+)(?: +(\d+))?)")));
      return std::stoll(m[2].matched ? m[2] : m[1]);
    };
    for (const char* label : {"total", "trainable", "frozen", "candidates", "optimizer state"}) {
      INFO(label);
      CHECK(number_after(train.output, label) == method_column(label));
    }
  }
}

TEST_CASE("plan rejects conflicting or bad flags with a message naming them") {
  auto fails_with = [](const std::string& flags, const std::string& message) {
    const auto r = test::run_command(test::bin() + " plan --model_config configs/llama_tiny.json " + flags);
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK(r.output.find("switchlora: error: " + message) != std::string::npos);
  };
  fails_with("--use_lora --optimizer galore_adamw",
             "--optimizer galore_adamw trains full-rank weights: it cannot be combined with --use_lora");
  fails_with("--switch_lora --storage fp16", "--storage must be fp32 or bf16, got \"fp16\"");
  fails_with("--lora_rank 8", "--lora_rank needs --use_lora or --switch_lora");
  fails_with("--optimizer galore_adamw --rank 64", "--rank 64 must be in [1, min(m, n) = 64)");
  fails_with("--rank 8", "--rank needs --optimizer galore_adamw (or --method galore)");
  fails_with("--use_lora --lora_rank 64", "--lora_rank 64 must be in (0, min(in, out) = 64)");
  fails_with("--use_lora --no_offload_candidates", "--no_offload_candidates needs --switch_lora");
}
