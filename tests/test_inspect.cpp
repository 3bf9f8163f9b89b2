// switchlora inspect and plot (model/update_spectrum.h, tools/cmd_inspect.cpp,
// tools/cmd_plot.cpp): the statistics against their closed forms, the
// paper's claim as a test (LoRA's learned update has rank <= r, SwitchLoRA's
// exceeds r, full rank's is min(m, n)), and the CLI: --save_initial, JSON,
// PNGs that really are PNGs, clear errors.
#include <doctest/doctest.h>

#include <Eigen/QR>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "dist_cli.h"
#include "model/update_spectrum.h"
#include "tests/cli.h"
#include "tests/tiny_config.h"
#include "train/trainer.h"

using namespace switchlora;

namespace {

// U diag(sigma) V^T with random orthonormal U (m x k), V (n x k).
std::vector<double> with_singular_values(const std::vector<double>& sigma, int m, int n, uint64_t seed) {
  Rng rng{seed, 0, 0};
  auto orthonormal = [&](int rows) {
    Eigen::MatrixXd X(rows, rows);
    for (int i = 0; i < rows; i++)
      for (int j = 0; j < rows; j++) X(i, j) = rng.uniform() - 0.5;
    return Eigen::MatrixXd(Eigen::HouseholderQR<Eigen::MatrixXd>(X).householderQ());
  };
  const Eigen::MatrixXd U = orthonormal(m), V = orthonormal(n);
  Eigen::MatrixXd M = Eigen::MatrixXd::Zero(m, n);
  for (size_t k = 0; k < sigma.size(); k++) M += sigma[k] * U.col(k) * V.col(k).transpose();
  std::vector<double> out((size_t)m * n);
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) out[(size_t)i * n + j] = M(i, j);
  return out;
}

constexpr int kB = 2, kT = 8, kRank = 4;

TrainOptions options(const std::string& method) {
  TrainOptions o;
  o.batch_size = o.total_batch_size = kB;
  o.max_length = kT;
  o.lr = 1e-2f;
  o.num_training_steps = 30;
  o.method = method;
  o.lora = {method != "full", kRank, 1.0f, method == "lora" ? "origin_lora" : "switchlora"};
  o.sw.switch_lora_interval = 2;  // r / 2 = 2 vectors of A and of B per layer per step
  o.sw.fix_switch_lora_interval = true;
  o.sw.adam_warm_step = 1;
  o.sw.num_training_steps = o.num_training_steps;
  return o;
}

// The learned updates of a short run of `method` on one fixed batch.
std::vector<LayerUpdate> updates_after(const TrainOptions& o, int steps) {
  const test::FixedBatch batch(kB, kT, 5);
  SingleProcess comm;
  Trainer tr(o, test::tiny_config(), comm);
  Checkpoint start;
  tr.save_state(start);
  const std::unique_ptr<Llama> base = model_from_checkpoint(start, "step 0");
  for (int t = 0; t < steps; t++) tr.train_step(batch.fn());
  return learned_updates(tr.model, *base);
}

// A PNG: the 8-byte signature, then an IHDR chunk with a nonzero width and height.
void check_png(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE_MESSAGE(f.good(), path << " was not written");
  std::vector<unsigned char> head(24);
  f.read(reinterpret_cast<char*>(head.data()), 24);
  REQUIRE(f.gcount() == 24);
  const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  CHECK(std::memcmp(head.data(), signature, 8) == 0);
  CHECK(std::memcmp(head.data() + 12, "IHDR", 4) == 0);
  auto be32 = [&](int at) { return (head[at] << 24) | (head[at + 1] << 16) | (head[at + 2] << 8) | head[at + 3]; };
  CHECK(be32(16) > 100);  // width
  CHECK(be32(20) > 100);  // height
  CHECK(std::filesystem::file_size(path) > 5000);
}

}  // namespace

TEST_CASE("effective rank, stable rank and the 1% count equal their closed forms") {
  // k equal singular values: effective rank k, stable rank k.
  Spectrum s = spectrum_of(with_singular_values({2, 2, 2}, 9, 7, 1), 9, 7);
  CHECK(s.effective_rank == doctest::Approx(3.0).epsilon(1e-10));
  CHECK(s.stable_rank == doctest::Approx(3.0).epsilon(1e-10));
  CHECK(s.above_1pct == 3);
  CHECK(s.numerical_rank(1e-5) == 3);
  CHECK(s.sigma.size() == 7);
  // sigma = (1, 1/2, 1/4): p = (4, 2, 1) / 7, H = -sum p ln p; stable rank 1 + 1/4 + 1/16.
  s = spectrum_of(with_singular_values({1, 0.5, 0.25}, 6, 8, 2), 6, 8);
  const double p[3] = {4 / 7.0, 2 / 7.0, 1 / 7.0};
  double H = 0;
  for (double x : p) H -= x * std::log(x);
  CHECK(s.effective_rank == doctest::Approx(std::exp(H)).epsilon(1e-10));
  CHECK(s.stable_rank == doctest::Approx(1.3125).epsilon(1e-10));
  CHECK(s.frobenius == doctest::Approx(std::sqrt(1.3125)).epsilon(1e-10));
  // Rank one: 1 and 1; a value at 0.5% of the largest is not "above 1%".
  s = spectrum_of(with_singular_values({5, 0.025}, 5, 5, 3), 5, 5);
  CHECK(s.above_1pct == 1);
  CHECK(s.numerical_rank(1e-5) == 2);
  CHECK(spectrum_of_sigma({4}).effective_rank == 1.0);
  CHECK(spectrum_of_sigma({0, 0}).effective_rank == 0.0);  // dW = 0
}

TEST_CASE("LoRA's learned update has rank <= r on every layer (B_0 = 0), at most 2r with SwitchLoRA's init") {
  for (const std::string init : {"origin_lora", "switchlora"}) {
    INFO(init);
    TrainOptions o = options("lora");
    o.lora.init_lora_type = init;
    const int bound = init == "origin_lora" ? kRank : 2 * kRank;
    for (const LayerUpdate& l : updates_after(o, 10)) {
      INFO(l.name);
      CHECK(l.spectrum.sigma[0] > 0);  // it did learn
      CHECK(l.spectrum.numerical_rank(1e-5) <= bound);
      if (init == "origin_lora") CHECK(l.spectrum.numerical_rank(1e-5) == kRank);
    }
  }
}

TEST_CASE("SwitchLoRA's learned update exceeds rank 2r on every adapted layer; full rank's is min(m, n)") {
  // Without switches SwitchLoRA is LoRA with its init: dW = s (B_t A_t - B_0 A_0)
  // has rank <= 2r. Its switches must take it beyond that on every layer.
  TrainOptions still = options("switchlora");
  still.sw.switch_lora_interval = 1000000;  // r / interval rounds to no switch at all
  for (const LayerUpdate& l : updates_after(still, 30)) {
    INFO(l.name);
    CHECK(l.spectrum.numerical_rank(1e-5) <= 2 * kRank);
  }
  int lowest = 1 << 30;
  for (const LayerUpdate& l : updates_after(options("switchlora"), 30)) {
    INFO(l.name);
    CHECK(l.spectrum.numerical_rank(1e-5) > 2 * kRank);
    CHECK(l.spectrum.above_1pct > 2 * kRank);  // not rounding noise: above 1% of the largest
    lowest = std::min(lowest, l.spectrum.numerical_rank(1e-5));
  }
  MESSAGE("SwitchLoRA r = " << kRank << ", 30 steps: the lowest numerical rank of dW over all layers is " << lowest
                            << " of 16");
  for (const LayerUpdate& l : updates_after(options("full"), 5)) {
    INFO(l.name);
    CHECK(l.spectrum.numerical_rank(1e-5) == std::min(l.rows, l.cols));
  }
}

TEST_CASE("inspect and plot on real runs: --save_initial, JSON, PNG files, and errors naming the flag") {
  const std::string data = test::make_tiny_data("inspect_data");
  const std::string common = " --model_config configs/llama_tiny.json --data " + data +
                             " --batch_size 2 --max_length 16 --num_training_steps 12 --eval_every 6"
                             " --max_eval_batches 1 --save_every 4 --keep_checkpoints 1";
  const std::string lora = data + "/lora", sw = data + "/sw", bare = data + "/bare";
  auto train = [&](const std::string& flags) {
    const test::RunResult r = test::run(test::bin() + " train" + common + flags);
    INFO(r.output);
    REQUIRE(r.rc == 0);
  };
  train(" --use_lora --lora_rank 4 --init_lora_type origin_lora --lr 1e-2 --save_initial --save_dir " + lora);
  train(" --switch_lora --lora_rank 4 --switch_lora_interval 2 --fix_switch_lora_interval --adam_warm_step 1"
        " --lr 1e-2 --save_initial --save_dir " + sw);
  train(" --use_lora --lora_rank 4 --save_dir " + bare);
  CHECK(std::filesystem::exists(lora + "/initial.bin"));  // kept through the rotation
  CHECK(!std::filesystem::exists(lora + "/checkpoint_00000004.bin"));

  const test::RunResult j = test::run(test::bin() + " inspect --json --checkpoint " + lora + " --checkpoint " + sw);
  INFO(j.output);
  REQUIRE(j.rc == 0);
  const nlohmann::json runs = nlohmann::json::parse(j.output)["runs"];
  REQUIRE(runs.size() == 2);
  CHECK(runs[0]["baseline"] == lora + "/initial.bin");
  CHECK(runs[0]["step"] == 12);
  CHECK(runs[0]["layers"].size() == 14);
  for (const nlohmann::json& l : runs[0]["layers"]) CHECK(l["numerical_rank"].get<int>() <= 4);
  for (const nlohmann::json& l : runs[1]["layers"]) {
    CHECK(l["numerical_rank"].get<int>() > 8);  // beyond 2r
    CHECK(l["singular_values"].size() == 64);  // min(m, n) of llama_tiny
  }

  const test::RunResult table = test::run(test::bin() + " inspect --checkpoint " + sw + " --plot " + data +
                                          "/spectra.png --kind gate");
  INFO(table.output);
  REQUIRE(table.rc == 0);
  CHECK(table.output.find("by kind") != std::string::npos);
  check_png(data + "/spectra.png");
  CHECK(!std::filesystem::exists(data + "/spectra.png.data.json"));  // no leftovers

  const test::RunResult plot = test::run(test::bin() + " plot " + lora + " " + sw + " --out " + data + "/loss.png");
  INFO(plot.output);
  REQUIRE(plot.rc == 0);
  check_png(data + "/loss.png");

  auto fails_with = [](const std::string& args, const std::string& message) {
    const test::RunResult r = test::run(test::bin() + " " + args);
    INFO(args << "\n" << r.output);
    CHECK(r.rc == 2);
    CHECK(r.output.find(message) != std::string::npos);
  };
  fails_with("inspect --checkpoint " + bare, "pass --baseline, or train with --save_initial");
  fails_with("inspect --checkpoint " + data + "/nothing.bin", "--checkpoint " + data + "/nothing.bin");
  fails_with("inspect --checkpoint " + sw + " --kind attn", "--kind must be q, k, v, o, gate, up or down");
  fails_with("inspect", "--checkpoint is required");
  fails_with("plot " + data + "/nothing --out x.png", data + "/nothing: not a run directory");
  fails_with("plot", "give one or more run directories");
  fails_with("inspect --checkpoint " + sw + " --plot /nonexistent_dir/x.png", "no directory /nonexistent_dir");
  std::filesystem::remove_all(data);
}
