// GaLore (train/galore_method.cpp): Adam's state has the projected shapes
// (m x r or r x n, never m x n), the projection is refreshed exactly every
// update_proj_gap steps, one step moves W as GaLore's formulas say (checked
// in double), a checkpoint restores it exactly, and bad flags are one-line
// errors naming the flag.
#include <doctest/doctest.h>

#include <Eigen/SVD>
#include <cmath>
#include <string>
#include <vector>

#include "engine/error.h"
#include "tests/tiny_config.h"
#include "tests/train_flags.h"
#include "train/galore_method.h"
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

TEST_CASE("GaLore's Adam state has the projected shapes: m x r when m >= n, r x n when m < n") {
  SingleProcess comm;
  Trainer tr(options(), test::tiny_config(), comm);
  const AdamW& opt = tr.method->optimizer();
  size_t projected = 0;
  for (const GaloreMethod::Projected& p : galore_of(tr).projected()) {
    const int m = p.lin->out, n = p.lin->in;
    const int i = opt.index_of(p.lin->W->name + ".galore");
    REQUIRE(i >= 0);
    CHECK(opt.tensors()[i].rows == (m >= n ? m : kRank));
    CHECK(opt.tensors()[i].cols == (m >= n ? kRank : n));
    CHECK(opt.index_of(p.lin->W->name) < 0);  // W itself has no m x n moments
    projected++;
  }
  CHECK(projected == 14);  // q, k, v, o, gate, up, down x 2 layers
  CHECK(opt.index_of("lm_head.weight") >= 0);  // the rest: plain AdamW
}

TEST_CASE("the projection is refreshed exactly at steps 0, T, 2T, ... and the run learns") {
  const Batch batch;
  SingleProcess comm;
  Trainer tr(options(3), test::tiny_config(), comm);
  const GaloreMethod::Projected& p = galore_of(tr).projected()[0];
  const size_t nP = (size_t)kRank * (p.right ? p.lin->in : p.lin->out);
  std::vector<float> before = host(tr.model.be, p.P, nP), losses;
  for (int t = 0; t < 10; t++) {
    const StepStats s = tr.train_step(batch.fn());
    losses.push_back(s.loss);
    const bool refresh = t % 3 == 0;
    CHECK(s.method["projection_refreshed"] == (refresh ? 1 : 0));
    const std::vector<float> now = host(tr.model.be, p.P, nP);
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
  CHECK(test::train_flags_error({"--optimizer", "galore_adamw", "--proj_type", "full"}).find("--proj_type") != std::string::npos);
  CHECK(test::train_flags_error({"--optimizer", "galore_adamw", "--update_proj_gap", "0"}).find("--update_proj_gap") !=
        std::string::npos);
  CHECK(test::train_flags_error({"--rank", "8"}).find("--rank") != std::string::npos);  // without GaLore
  CHECK(test::train_flags_error({"--optimizer", "sgd"}).find("--optimizer") != std::string::npos);
  CHECK(test::train_flags_error({"--optimizer", "galore_adamw", "--rank", "8"}).empty());
}

TEST_CASE("one GaLore step: P spans G's top singular vectors, and W moves by -lr * scale * back(Adam(R))") {
  const Batch batch;
  SingleProcess comm;
  TrainOptions o = options(1);
  o.clip_grad_norm = 0.0f;  // the step sees the raw gradient, as computed below
  Trainer tr(o, test::tiny_config(), comm);
  const GaloreMethod::Projected& p = galore_of(tr).projected()[4];  // layer 0's gate_proj: 24 x 16, right side
  const Linear& l = *p.lin;
  const int m = l.out, n = l.in, r = kRank;
  REQUIRE(p.right);
  // The gradient the step will see.
  tr.model.zero_grad();
  tr.model.forward(batch.in.data(), batch.tg.data(), kB, kT);
  tr.model.backward(1.0f);
  const std::vector<float> W0 = tr.model.params.get(*l.W);
  std::vector<float> g(l.W->numel());
  tr.model.be.copy_and_wait(g.data(), l.W->grad, g.size() * sizeof(float));
  tr.train_step(batch.fn());
  const std::vector<float> P = host(tr.model.be, p.P, (size_t)r * n), W1 = tr.model.params.get(*l.W);
  // P (r, n) has orthonormal rows, and captures the r largest singular values of G.
  Eigen::MatrixXd Gd(m, n), Pd(r, n);
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) Gd(i, j) = g[(size_t)i * n + j];
  for (int k = 0; k < r; k++)
    for (int j = 0; j < n; j++) Pd(k, j) = P[(size_t)k * n + j];
  CHECK((Pd * Pd.transpose() - Eigen::MatrixXd::Identity(r, r)).norm() < 1e-5);
  const Eigen::VectorXd sigma = Eigen::JacobiSVD<Eigen::MatrixXd>(Gd).singularValues();
  const double captured = (Gd * Pd.transpose()).squaredNorm(), top = sigma.head(r).squaredNorm();
  CHECK(captured == doctest::Approx(top).epsilon(1e-5));
  // First Adam step of R = G P^T (k = 1): N = R / (|R| + eps / sqrt(1 - b2)) elementwise (HF's
  // eps placement), and W1 = W0 - lr * scale * N P.
  const Eigen::MatrixXd R = Gd * Pd.transpose();
  const double eps = o.adam_eps / std::sqrt(1.0 - o.adam_beta2);
  const Eigen::MatrixXd N = R.array() / (R.array().abs() + eps);
  const Eigen::MatrixXd expected = -(double)o.lr * o.galore.galore_scale * N * Pd;
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
  MESSAGE("GaLore step vs its formula in double: relative error " << std::sqrt(err / norm));
}
