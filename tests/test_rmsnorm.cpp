// RMSNorm forward against its formula, backward against finite differences.
#include <cmath>
#include <vector>

#include "engine/ops.h"
#include "tests/gradcheck.h"

using namespace switchlora;
using namespace switchlora::test;

// C = 100 spans two channel blocks of the dg reduction, the second partial.
constexpr int kN = 7, kC = 100;
constexpr float kEps = 1e-5f;

// y = x / sqrt(mean(x^2) + eps) * g, in double.
static std::vector<double> naive_rmsnorm(const std::vector<double>& x, const std::vector<double>& g) {
  std::vector<double> y(x.size());
  for (int n = 0; n < kN; n++) {
    double ss = 0.0;
    for (int c = 0; c < kC; c++) ss += x[(size_t)n * kC + c] * x[(size_t)n * kC + c];
    double r = 1.0 / std::sqrt(ss / kC + kEps);
    for (int c = 0; c < kC; c++) y[(size_t)n * kC + c] = x[(size_t)n * kC + c] * r * g[c];
  }
  return y;
}

// Inputs: x ~ N(0, 1) and g ~ 1 + 0.1 N(0, 1), like a trained gain.
struct Inputs {
  std::vector<float> x, g, R;
  explicit Inputs(uint64_t seed) {
    Rng rng{seed, 0, 0};
    x = randn((size_t)kN * kC, rng);
    g = randn(kC, rng, 0.1f);
    for (float& v : g) v += 1.0f;
    R = randn(x.size(), rng);
  }
};

// Every output is a few float products of order-1 numbers with rstd, whose sum
// of squares is taken in double: errors are a few ulps (1e-7 of the scale);
// 1e-5 leaves room for the backward's 100-term dg sums and dot product.
constexpr double kTol = 1e-5;

TEST_CASE("rmsnorm forward matches x / sqrt(mean(x^2) + eps) * g and saves rstd") {
  Inputs in(1);
  std::vector<float> y(in.x.size()), rstd(kN);
  cpu::rmsnorm_forward(y.data(), rstd.data(), in.x.data(), in.g.data(), kN, kC, kEps);
  check_close("y", y, naive_rmsnorm(to_double(in.x), to_double(in.g)), kTol);
  std::vector<double> want(kN);
  for (int n = 0; n < kN; n++) {
    double ss = 0.0;
    for (int c = 0; c < kC; c++) ss += (double)in.x[(size_t)n * kC + c] * in.x[(size_t)n * kC + c];
    want[n] = 1.0 / std::sqrt(ss / kC + kEps);
  }
  check_close("rstd", rstd, want, kTol);
}

TEST_CASE("rmsnorm grads match finite differences for x and g") {
  Inputs in(2);
  std::vector<float> y(in.x.size()), rstd(kN), dx(in.x.size(), 0.0f), dg(kC, 0.0f);
  cpu::rmsnorm_forward(y.data(), rstd.data(), in.x.data(), in.g.data(), kN, kC, kEps);
  cpu::rmsnorm_backward(dx.data(), dg.data(), in.R.data(), in.x.data(), in.g.data(), rstd.data(), kN, kC);
  auto xd = to_double(in.x), gd = to_double(in.g);
  auto gx = numeric_grad([&](const std::vector<double>& v) { return probe_loss(naive_rmsnorm(v, gd), in.R); }, xd);
  auto gg = numeric_grad([&](const std::vector<double>& v) { return probe_loss(naive_rmsnorm(xd, v), in.R); }, gd);
  check_close("dx", dx, gx, kTol);
  check_close("dg", dg, gg, kTol);
}

TEST_CASE("rmsnorm_backward accumulates grads and skips a null grad pointer") {
  Inputs in(3);
  std::vector<float> y(in.x.size()), rstd(kN);
  cpu::rmsnorm_forward(y.data(), rstd.data(), in.x.data(), in.g.data(), kN, kC, kEps);
  std::vector<float> dx1(in.x.size(), 0.0f), dg1(kC, 0.0f), dx2 = dx1, dg2 = dg1;
  cpu::rmsnorm_backward(dx1.data(), dg1.data(), in.R.data(), in.x.data(), in.g.data(), rstd.data(), kN, kC);
  // Twice, each time with one pointer null: dx gets two calls' worth, and
  // dg only the one call where it was passed.
  cpu::rmsnorm_backward(dx2.data(), nullptr, in.R.data(), in.x.data(), in.g.data(), rstd.data(), kN, kC);
  cpu::rmsnorm_backward(dx2.data(), dg2.data(), in.R.data(), in.x.data(), in.g.data(), rstd.data(), kN, kC);
  // Each call adds the same float value, and 0 + a + a = 2a exactly in float.
  for (size_t i = 0; i < dx1.size(); i++) {
    INFO("dx[" << i << "]");
    REQUIRE(dx2[i] == 2.0f * dx1[i]);
  }
  CHECK(dg2 == dg1);
}
