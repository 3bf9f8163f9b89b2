// switchlora bench's yardstick and --profile: what they report is complete
// and adds up. (Speed itself is measured by make bench, never asserted here.)
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "tests/cli.h"
#include "tests/tiny_config.h"

using namespace switchlora;

namespace {

// The JSON line bench prints last; `output`, if asked, gets all it printed.
nlohmann::json bench(const std::string& flags, std::string* output = nullptr) {
  const LlamaConfig c = test::small_config(64, 96, 4, 2, 256, 32);
  const std::string path = std::filesystem::temp_directory_path() / ("bench_" + std::to_string(getpid()) + ".json");
  std::ofstream(path) << config_to_json(c);
  const test::RunResult r = test::run(test::bin() + " bench --device cpu --model_config " + path +
                                      " --vocab_size 256 --batch_size 2 --max_length 32 --steps 2 --warmup 1 "
                                      "--gemm_rounds 1 " + flags);
  std::filesystem::remove(path);
  INFO(r.output);
  REQUIRE(r.rc == 0);
  if (output) *output = r.output;
  return nlohmann::json::parse(r.output.substr(r.output.rfind("\n{") + 1));
}

}  // namespace

TEST_CASE("bench measures every GEMM library it knows and takes the fastest as its yardstick") {
  const nlohmann::json j = bench("");
  const nlohmann::json& rates = j.at("gemm_rates");
  CHECK(j.at("engine_gemm") == cpu::gemm_library());
  CHECK(j.at("weight_gradient_gemm") == cpu::weight_gradient_gemm_library());
  CHECK(rates.contains(cpu::gemm_library()));
  CHECK(rates.contains(cpu::weight_gradient_gemm_library()));
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

// --gemm_shapes' table: name -> (2 M N K, the best library's rate).
static std::map<std::string, std::pair<double, double>> gemm_rows(const std::string& out, const nlohmann::json& j) {
  std::map<std::string, std::pair<double, double>> rows;
  std::istringstream lines(out.substr(out.find("GFLOP/s, best of rounds")));
  std::string line;
  std::getline(lines, line);
  const size_t libraries = j.at("gemm_rates").size();
  while (std::getline(lines, line) && line.find(" x ") != std::string::npos) {
    // "<name>  M x N x K  rate rate rate"
    std::istringstream words(line.substr(26));
    double m, n, k, best = 0, rate;
    std::string x;
    words >> m >> x >> n >> x >> k;
    for (size_t i = 0; i < libraries && words >> rate; i++) best = std::max(best, rate);
    CHECK(best > 0);
    std::string name = line.substr(0, 26);
    name.erase(name.find_last_not_of(' ') + 1);
    rows[name] = {2 * m * n * k, best};
  }
  return rows;
}

// --gemm_shapes: a row per library for the square and every GEMM of the
// model, and the full-rank ceiling recomputed here from the printed rates
// with the model's own count (small_config above: C 64, I 96, L 2, V 256;
// bench's tokens: batch 2 x 32).
TEST_CASE("bench --gemm_shapes lists the model's GEMMs, and its ceiling is their FLOPs at those rates") {
  std::string out;
  const nlohmann::json j = bench("--gemm_shapes", &out);
  const double C = 64, I = 96, L = 2, V = 256, T = 32, N = 2 * 32;
  std::map<std::string, std::pair<double, double>> rows = gemm_rows(out, j);
  const std::pair<const char*, double> per_step[] = {
      {"q,k,v,o forward  x W^T", 4 * L}, {"q,k,v,o dx       dy W", 4 * L}, {"q,k,v,o dW       dy^T x", 4 * L},
      {"gate,up forward  x W^T", 2 * L}, {"gate,up dx       dy W", 2 * L}, {"gate,up dW       dy^T x", 2 * L},
      {"down forward     x W^T", L},     {"down dx          dy W", L},     {"down dW          dy^T x", L},
      {"lm_head forward  x W^T", 1},     {"lm_head dx       dy W", 1},     {"lm_head dW       dy^T x", 1}};
  REQUIRE(rows.count("square"));
  CHECK(rows.size() == 1 + std::size(per_step));  // full rank: no LoRA rows
  double gemm_flops = 0, gemm_sec = 0, slowest = rows["square"].second;
  for (const auto& [name, count] : per_step) {
    CAPTURE(name);
    REQUIRE(rows.count(name));
    gemm_flops += count * rows[name].first;
    gemm_sec += count * rows[name].first / (rows[name].second * 1e9);
    slowest = std::min(slowest, rows[name].second);
  }
  // Every weight matrix's forward, dx and dW: 6 N_matmul a token.
  CHECK(gemm_flops == doctest::Approx(6 * (L * (4 * C * C + 3 * C * I) + V * C) * N));
  const double square = rows["square"].second, attention = 12 * L * T * C * N;
  const double ceiling = (gemm_flops + attention) / (gemm_sec + attention / (square * 1e9)) / 1e9 / square;
  // The printed rates are rounded to 0.1 GFLOP/s, each time's share by at
  // most 0.05 / rate of itself, the ceiling to 3 decimals.
  const double got = j.at("gemm_ceiling").get<double>();
  CAPTURE(out);
  CHECK(std::abs(got - ceiling) <= 2 * 0.05 / slowest * ceiling + 0.0005);
  CHECK_FALSE(j.contains("lora_gemm_ms"));
}

// With adapters, --gemm_shapes adds LoRA's products for each kind of layer,
// those of the path the layer takes at the batch: at 2 x 32 tokens no layer
// merges (N < 2 max(in, out)), at 8 x 32 every one does (lora_merge_pays).
// lora_gemm_ms is their time a step at the printed rates.
TEST_CASE("bench --gemm_shapes lists LoRA's products of the path each layer takes, and their time a step") {
  const double C = 64, I = 96, L = 2, r = 4;
  for (const int batch : {2, 8}) {
    const bool merged = batch == 8;
    CAPTURE(batch);
    std::string out;
    const nlohmann::json j =
        bench("--gemm_shapes --use_lora --lora_rank 4 --batch_size " + std::to_string(batch), &out);
    CAPTURE(out);
    CHECK_FALSE(j.contains("gemm_ceiling"));  // a full-rank step's bound only
    std::map<std::string, std::pair<double, double>> rows = gemm_rows(out, j);
    const double N = batch * 32;
    struct Kind {
      const char* name;
      double in, out, count;
    };
    double sec = 0, slowest = INFINITY;
    size_t lora_rows = 0;
    for (const Kind& k : {Kind{"q,k,v,o", C, C, 4 * L}, Kind{"gate,up", C, I, 2 * L}, Kind{"down", I, C, L}}) {
      // product -> (M N K, how many a step multiplies)
      std::vector<std::pair<std::string, std::pair<double, double>>> products = {
          {"x A^T", {N * r * k.in, k.count}},
          {"dxa dy B", {N * r * k.out, k.count}},
          {"dB dy^T xa", {k.out * r * N, k.count}},
          {"dA dxa^T x", {r * k.in * N, k.count}}};
      if (merged) {
        products.push_back({"merge B A", {k.out * k.in * r, 2 * k.count}});  // forward, and again for dx
      } else {
        products.push_back({"xa B^T", {N * k.out * r, k.count}});
        products.push_back({"dx dxa A", {N * k.in * r, k.count}});
      }
      for (const auto& [what, mnk_count] : products) {
        const std::string name = std::string(k.name) + " LoRA " + what;
        CAPTURE(name);
        REQUIRE(rows.count(name));
        CHECK(rows[name].first == doctest::Approx(2 * mnk_count.first));
        sec += mnk_count.second * rows[name].first / (rows[name].second * 1e9);
        slowest = std::min(slowest, rows[name].second);
        lora_rows++;
      }
    }
    CHECK(rows.size() == 1 + 12 + lora_rows);  // the square, full rank's twelve, LoRA's
    const double got = j.at("lora_gemm_ms").get<double>();
    CHECK(std::abs(got - 1000 * sec) <= 2 * 0.05 / slowest * 1000 * sec + 0.005);
  }
}
