// switchlora bench's yardstick and --profile: what they report is complete
// and adds up. (Speed itself is measured by make bench, never asserted here.)
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "engine/ops.h"
#include "tests/cli.h"
#include "tests/tiny_config.h"

using namespace switchlora;

namespace {

nlohmann::json bench(const std::string& flags) {
  const LlamaConfig c = test::small_config(64, 96, 4, 2, 256, 32);
  const std::string path = std::filesystem::temp_directory_path() / ("bench_" + std::to_string(getpid()) + ".json");
  std::ofstream(path) << config_to_json(c);
  const test::RunResult r = test::run(test::bin() + " bench --device cpu --model_config " + path +
                                      " --vocab_size 256 --batch_size 2 --max_length 32 --steps 2 --warmup 1 "
                                      "--gemm_rounds 1 " + flags);
  std::filesystem::remove(path);
  INFO(r.output);
  REQUIRE(r.rc == 0);
  return nlohmann::json::parse(r.output.substr(r.output.rfind("\n{") + 1));
}

}  // namespace

TEST_CASE("bench measures every GEMM library it knows and takes the fastest as its yardstick") {
  const nlohmann::json j = bench("");
  const nlohmann::json& rates = j.at("gemm_rates");
  CHECK(j.at("engine_gemm") == cpu::gemm_library());
  CHECK(j.at("skinny_gemm") == cpu::skinny_gemm_library());
  CHECK(rates.contains(cpu::gemm_library()));
  CHECK(rates.contains("eigen"));
#if !defined(SWITCHLORA_SANITIZED)
  // make deps installs both, and the build finds them (CMakeLists.txt).
  CHECK(rates.contains("openblas"));
  CHECK(rates.contains("blis"));
#endif
  double best = 0;
  std::string best_name;
  for (const auto& [name, rate] : rates.items()) {
    CHECK(rate.get<double>() > 0);
    if (rate.get<double>() > best) best = rate.get<double>(), best_name = name;
  }
  CHECK(j.at("gemm_library") == best_name);
  CHECK(j.at("gemm_gflops").get<double>() == doctest::Approx(best).epsilon(1e-3));
  CHECK(j.at("fraction_of_gemm").get<double>() ==
        doctest::Approx(j.at("best_gflops").get<double>() / best).epsilon(0.01));
  // The fastest step is at least the mean, and its rate says the same.
  CHECK(j.at("best_step_ms").get<double>() <= j.at("step_ms").get<double>() * 1.0001);
  CHECK(j.at("best_gflops").get<double>() ==
        doctest::Approx(j.at("gflops").get<double>() * j.at("step_ms").get<double>() /
                        j.at("best_step_ms").get<double>()).epsilon(0.01));
  CHECK_FALSE(j.contains("profile_ms"));
}

TEST_CASE("bench --profile names every phase of a SwitchLoRA step, and the phases add up to the step") {
  const nlohmann::json j = bench("--profile --switch_lora --lora_rank 4 --fix_switch_lora_interval "
                                 "--switch_lora_interval 4 --adam_warm_step 1");
  const nlohmann::json& p = j.at("profile_ms");
  double sum = 0;
  for (const auto& [name, ms] : p.items()) {
    CHECK(ms.get<double>() >= 0);
    sum += ms.get<double>();
  }
  for (const char* name : {"GEMM attention q, k, v, o", "GEMM mlp gate, up, down", "GEMM lm_head",
                           "GEMM LoRA adapters", "attention", "norms", "rope", "swiglu", "cross-entropy",
                           "embedding", "all-reduce", "clip", "before update (switch)", "update (optimizer)",
                           "after update (thaw, prefetch, merge)", "host, between ops"}) {
    CAPTURE(name);
    CHECK(p.contains(name));
  }
  CHECK_FALSE(p.contains("GEMM other"));  // every GEMM of the model has a layer kind
  // What the profiler attributes is the whole step but for the few host
  // instructions outside any phase (the loop, the batch's random tokens).
  // (Each entry is rounded to 0.01 ms in the JSON: on this model's ~1 ms
  // step, 19 roundings can move the sum by 0.1 ms either way.)
  const double total = j.at("profiled_step_ms").get<double>();
  CHECK(sum <= total * 1.001 + 0.005 * (double)p.size());
  CHECK(sum >= total * 0.9 - 0.005 * (double)p.size());
}
