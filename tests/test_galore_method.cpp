// GaLore (train/galore_method.cpp): Adam's state has the projected shapes
// (m x r or r x n, never m x n), the projection is refreshed exactly every
// update_proj_gap steps, one step moves W as GaLore's formulas say (checked
// in double), a checkpoint restores it exactly, and bad flags are one-line
// errors naming the flag.
#include <doctest/doctest.h>

#include <unistd.h>

#include <Eigen/SVD>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/error.h"
#include "tests/cli.h"
#include "tests/tiny_config.h"
#include "tests/train_flags.h"
#include "train/galore_method.h"
#include "train/plan.h"
#include "train/trainer.h"

using namespace switchlora;

namespace {

constexpr int kB = 2, kT = 8, kRank = 4;

TrainOptions options(int gap = 3) {
  TrainOptions o;
  o.batch_size = o.total_batch_size = kB;
  o.max_length = kT;
  o.lr = 1e-2f;
  o.num_training_steps = 12;
  o.method = "galore";
  o.adam_eps = 1e-6f;
  o.galore.rank = kRank;
  o.galore.update_proj_gap = gap;
  return o;
}

struct Batch : test::FixedBatch {
  Batch() : FixedBatch(kB, kT, 29) {}
};

GaloreMethod& galore_of(Trainer& tr) { return dynamic_cast<GaloreMethod&>(*tr.method); }

std::vector<float> host(Backend& be, const float* p, size_t n) {
  std::vector<float> out(n);
  be.copy_and_wait(out.data(), p, n * sizeof(float));
  return out;
}

}  // namespace

TEST_CASE("GaLore's Adam state has the projected shapes: std m x r when m >= n, r x n when m < n; full r x r") {
  // (rows, cols) of the moments of an m x n weight, for each --proj_type.
  const auto shape = [](const std::string& type, int m, int n) -> std::pair<int, int> {
    const bool right = type == "right" || (type == "std" && m >= n) || (type == "reverse_std" && m < n);
    if (type == "full") return {kRank, kRank};
    return right ? std::pair{m, kRank} : std::pair{kRank, n};
  };
  for (const std::string type : {"std", "reverse_std", "left", "right", "full"}) {
    INFO(type);
    SingleProcess comm;
    TrainOptions o = options();
    o.galore.proj_type = type;
    Trainer tr(o, test::tiny_config(), comm);
    const AdamW& opt = tr.method->optimizer();
    size_t projected = 0, square = 0;
    for (const GaloreMethod::Projected& p : galore_of(tr).projected()) {
      const int m = p.lin->out, n = p.lin->in;
      const int i = opt.index_of(p.lin->W->name + ".galore");
      REQUIRE(i >= 0);
      CHECK(std::pair{opt.tensors()[i].rows, opt.tensors()[i].cols} == shape(type, m, n));
      CHECK(opt.index_of(p.lin->W->name) < 0);  // W itself has no m x n moments
      projected++;
      square += m == n;
    }
    CHECK(projected == 14);  // q, k, v, o, gate, up, down x 2 layers
    CHECK(square == 8);      // q, k, v, o: so both std branches are taken
    CHECK(opt.index_of("lm_head.weight") >= 0);  // the rest: plain AdamW
  }
}

TEST_CASE("the projection is refreshed exactly at steps 0, T, 2T, ... and the run learns") {
  const Batch batch;
  SingleProcess comm;
  Trainer tr(options(3), test::tiny_config(), comm);
  const GaloreMethod::Projected& p = galore_of(tr).projected()[0];  // q_proj, square: the right side
  REQUIRE(p.Vh != nullptr);
  const size_t nP = (size_t)kRank * p.lin->in;
  std::vector<float> before = host(tr.model.be, p.Vh, nP), losses;
  for (int t = 0; t < 10; t++) {
    const StepStats s = tr.train_step(batch.fn());
    losses.push_back(s.loss);
    const bool refresh = t % 3 == 0;
    CHECK(s.method["projection_refreshed"] == (refresh ? 1 : 0));
    const std::vector<float> now = host(tr.model.be, p.Vh, nP);
    CAPTURE(t);
    if (refresh) CHECK(now != before);  // a new gradient: a new projection
    else CHECK(now == before);
    before = now;
  }
  CHECK(losses.back() < losses.front());
}

TEST_CASE("a GaLore checkpoint restores projections and projected moments exactly") {
  const Batch batch;
  SingleProcess comm;
  Trainer a(options(4), test::tiny_config(), comm);
  for (int t = 0; t < 5; t++) a.train_step(batch.fn());
  Checkpoint ck;
  a.save_state(ck);
  Trainer b(options(4), test::tiny_config(), comm);
  b.load_state(ck, "in memory");
  for (int t = 5; t < 7; t++) CHECK(a.train_step(batch.fn()).loss == b.train_step(batch.fn()).loss);
  CHECK(a.model.params.trainable.to_host() == b.model.params.trainable.to_host());
}

TEST_CASE("bad GaLore flags are one-line errors naming the flag") {
  SingleProcess comm;
  TrainOptions o = options();
  o.galore.rank = 16;  // min(m, n) = 16 for the tiny model's attention weights
  CHECK_THROWS_WITH_AS(Trainer(o, test::tiny_config(), comm), doctest::Contains("--rank"), Error);
  CHECK(test::train_flags_error({"--optimizer", "galore_adamw", "--switch_lora"}).find("--optimizer") != std::string::npos);
  CHECK(test::train_flags_error({"--optimizer", "galore_adamw", "--proj_type", "both"}).find("--proj_type") != std::string::npos);
  CHECK(test::train_flags_error({"--optimizer", "galore_adamw", "--proj_type", "full"}).empty());
  CHECK(test::train_flags_error({"--optimizer", "galore_adamw", "--update_proj_gap", "0"}).find("--update_proj_gap") !=
        std::string::npos);
  CHECK(test::train_flags_error({"--rank", "8"}).find("--rank") != std::string::npos);  // without GaLore
  CHECK(test::train_flags_error({"--optimizer", "sgd"}).find("--optimizer") != std::string::npos);
  CHECK(test::train_flags_error({"--optimizer", "galore_adamw", "--rank", "8"}).empty());
}

// The rows of P (k, len) orthonormal, as an Eigen matrix.
Eigen::MatrixXd orthonormal_rows(const std::vector<float>& P, int k, int len) {
  Eigen::MatrixXd M(k, len);
  for (int i = 0; i < k; i++)
    for (int j = 0; j < len; j++) M(i, j) = P[(size_t)i * len + j];
  CHECK((M * M.transpose() - Eigen::MatrixXd::Identity(k, k)).norm() < 1e-5);
  return M;
}

TEST_CASE("one GaLore step: U_r, Vh_r span G's top singular vectors, and W moves by -lr * scale * back(Adam(R))") {
  for (const std::string type : {"std", "left", "full"}) {  // on a 24 x 16 weight: right side, left side, both
    INFO(type);
    const Batch batch;
    SingleProcess comm;
    TrainOptions o = options(1);
    o.clip_grad_norm = 0.0f;  // the step sees the raw gradient, as computed below
    o.galore.proj_type = type;
    // Right after a refresh, full's R = U_r^T G Vh_r^T is diag(sigma) plus
    // rounding noise off the diagonal, and R / (|R| + eps') maps noise near
    // eps' to O(1): an eps' well above the noise (1e-4 / sqrt(1 - b2) =
    // 3e-3, against off-diagonal noise of ~1e-8) makes the step a smooth
    // function of R, so the comparison below is well conditioned.
    o.adam_eps = 1e-4f;
    Trainer tr(o, test::tiny_config(), comm);
    const GaloreMethod::Projected& p = galore_of(tr).projected()[4];  // layer 0's gate_proj: 24 x 16
    const Linear& l = *p.lin;
    const int m = l.out, n = l.in, r = kRank;
    REQUIRE(m == 24);
    REQUIRE(n == 16);
    // The gradient the step will see.
    tr.model.zero_grad();
    tr.model.forward(batch.in.data(), batch.tg.data(), kB, kT);
    tr.model.backward(1.0f);
    const std::vector<float> W0 = tr.model.params.get(*l.W);
    std::vector<float> g(l.W->numel());
    tr.model.be.copy_and_wait(g.data(), l.W->grad, g.size() * sizeof(float));
    tr.train_step(batch.fn());
    const std::vector<float> W1 = tr.model.params.get(*l.W);
    Eigen::MatrixXd Gd(m, n);
    for (int i = 0; i < m; i++)
      for (int j = 0; j < n; j++) Gd(i, j) = g[(size_t)i * n + j];
    // Each projector has orthonormal columns (U_r) or rows (Vh_r) and captures
    // the r largest singular values of G: ||U_r^T G||_F^2 = ||G Vh_r^T||_F^2 = sum of the top r sigma^2.
    const Eigen::VectorXd sigma = Eigen::JacobiSVD<Eigen::MatrixXd>(Gd).singularValues();
    const double top = sigma.head(r).squaredNorm();
    Eigen::MatrixXd U = Eigen::MatrixXd::Identity(m, m), Vh = Eigen::MatrixXd::Identity(n, n);
    CHECK((p.U != nullptr) == (std::string(type) != "std"));
    CHECK((p.Vh != nullptr) == (std::string(type) != "left"));
    if (p.U) {
      // U_r (m, r) is stored row-major: its transpose's rows are the vectors.
      const std::vector<float> Ur = host(tr.model.be, p.U, (size_t)m * r);
      std::vector<float> UrT((size_t)r * m);
      for (int i = 0; i < m; i++)
        for (int k = 0; k < r; k++) UrT[(size_t)k * m + i] = Ur[(size_t)i * r + k];
      U = orthonormal_rows(UrT, r, m).transpose();
      CHECK((U.transpose() * Gd).squaredNorm() == doctest::Approx(top).epsilon(1e-5));
    }
    if (p.Vh) {
      Vh = orthonormal_rows(host(tr.model.be, p.Vh, (size_t)r * n), r, n);
      CHECK((Gd * Vh.transpose()).squaredNorm() == doctest::Approx(top).epsilon(1e-5));
    }
    // First Adam step of R = U_r^T G Vh_r^T (an identity where a side is not
    // projected), k = 1: N = R / (|R| + eps / sqrt(1 - b2)) elementwise (HF's
    // eps placement), and W1 = W0 - lr * scale * U_r N Vh_r.
    const Eigen::MatrixXd R = U.transpose() * Gd * Vh.transpose();
    CHECK(R.rows() == p.rows);
    CHECK(R.cols() == p.cols);
    const double eps = o.adam_eps / std::sqrt(1.0 - o.adam_beta2);
    const Eigen::MatrixXd N = R.array() / (R.array().abs() + eps);
    const Eigen::MatrixXd expected = -(double)o.lr * o.galore.galore_scale * U * N * Vh;
    double err = 0, norm = 0;
    for (int i = 0; i < m; i++)
      for (int j = 0; j < n; j++) {
        const double moved = (double)W1[(size_t)i * n + j] - W0[(size_t)i * n + j];
        err += std::pow(moved - expected(i, j), 2);
        norm += std::pow(expected(i, j), 2);
      }
    // W moves by ~lr * scale = 2.5e-3 per entry on weights of ~0.2: float32
    // rounding of W (1e-8 absolute) is ~1e-5 of the move.
    INFO("relative error of the update " << std::sqrt(err / norm));
    CHECK(std::sqrt(err / norm) < 1e-4);
    MESSAGE("GaLore " << type << " step vs its formula in double: relative error " << std::sqrt(err / norm));
  }
}

// The optimizer memory GaLore saves is real: two `switchlora bench` runs of a
// model whose block weights dominate (C 256, I 688, 16 layers, vocabulary
// 300, one 16-token sequence, so activations are small), full rank and GaLore
// r = 16, differ in peak RSS by what plan says their optimizer states differ
// (Adam's m x n moments, 101 MB, against GaLore's 14.5 MB), within 20%.
// Beyond plan's count, a refresh holds transient SVD workspace for one weight
// at a time (float and double copies of G and Eigen's bidiagonalisation:
// measured ~4.5 x 8 m n bytes, 6 MB for a 688 x 256 weight); many layers keep
// that small against the savings, as it is at real sizes.
TEST_CASE("GaLore's peak RSS is lower than full rank's by the optimizer memory plan computes") {
#ifdef __SANITIZE_ADDRESS__
  MESSAGE("skipped under AddressSanitizer: its shadow memory and quarantine are not the engine's RSS");
  return;
#endif
  const LlamaConfig c = test::small_config(256, 688, 4, 16, 300, 16);
  const std::string path = std::filesystem::temp_directory_path() / ("galore_rss_" + std::to_string(getpid()) + ".json");
  std::ofstream(path) << config_to_json(c);
  auto peak_mb = [&](const std::string& method) {
    const test::RunResult r = test::run(test::bin() + " bench --model_config " + path +
                                        " --vocab_size 300 --batch_size 1 --max_length 16 --steps 1 --warmup 1" + method);
    INFO(r.output);
    REQUIRE(r.rc == 0);
    const nlohmann::json j = nlohmann::json::parse(r.output.substr(r.output.rfind("\n{") + 1));
    return j.at("peak_rss_mb").get<double>();
  };
  // A first run pages the binary's ~200 MB of shared libraries in: after a
  // cold page cache a run peaks ~16 MB lower than the next (test_loader).
  peak_mb("");
  const double full = peak_mb(""), galore = peak_mb(" --optimizer galore_adamw --rank 16");
  std::filesystem::remove(path);
  TrainOptions o;
  o.batch_size = 1;
  o.max_length = 16;
  o.galore.rank = 16;
  const MemoryPlan plan_full = plan_memory(c, o, 4);
  o.method = "galore";
  const MemoryPlan plan_galore = plan_memory(c, o, 4);
  const double planned = (plan_full.optimizer - plan_galore.optimizer) / (1024.0 * 1024.0);
  CHECK(plan_full.weights == plan_galore.weights);
  CHECK(plan_full.gradients == plan_galore.gradients);
  MESSAGE("peak RSS: full rank " << full << " MB, GaLore r 16 " << galore << " MB: " << full - galore
                                 << " MB saved; plan says " << planned << " MB");
  CHECK(full - galore == doctest::Approx(planned).epsilon(0.2));
}
