// Residual add and its backward.
#include <vector>

#include "engine/ops.h"
#include "tests/gradcheck.h"

using namespace switchlora;
using namespace switchlora::test;

constexpr int kN = 1001;  // not a multiple of the vector width

TEST_CASE("residual forward adds, also in place over an input") {
  Rng rng{1, 0, 0};
  auto a = randn(kN, rng), b = randn(kN, rng);
  std::vector<float> out(kN);
  cpu::residual_forward(out.data(), a.data(), b.data(), kN);
  for (int i = 0; i < kN; i++) {
    INFO("i = " << i);
    REQUIRE(out[i] == a[i] + b[i]);  // one float add either way: exact
  }
  std::vector<float> x = a;  // out aliases a, as in x = x + f(x)
  cpu::residual_forward(x.data(), x.data(), b.data(), kN);
  CHECK(x == out);
}

TEST_CASE("residual grads match finite differences, accumulate, and skip a null grad pointer") {
  Rng rng{2, 0, 0};
  auto a = randn(kN, rng), b = randn(kN, rng), R = randn(kN, rng);
  auto naive = [](const std::vector<double>& x, const std::vector<double>& y) {
    std::vector<double> o(x.size());
    for (size_t i = 0; i < x.size(); i++) o[i] = x[i] + y[i];
    return o;
  };
  auto ad = to_double(a), bd = to_double(b);
  auto ga = numeric_grad([&](const std::vector<double>& v) { return probe_loss(naive(v, bd), R); }, ad);
  auto gb = numeric_grad([&](const std::vector<double>& v) { return probe_loss(naive(ad, v), R); }, bd);
  // Start from nonzero gradients to see the accumulation: da = da0 + R.
  auto da0 = randn(kN, rng), db0 = randn(kN, rng);
  std::vector<float> da = da0, db = db0;
  cpu::residual_backward(da.data(), db.data(), R.data(), kN);
  std::vector<double> da_step(kN), db_step(kN);
  for (int i = 0; i < kN; i++) da_step[i] = (double)da[i] - da0[i], db_step[i] = (double)db[i] - db0[i];
  // The gradient is R itself; only the float add of da0 + R rounds (1 ulp of
  // the sum, ~3e-7 of the scale).
  check_close("da - da0", da_step, ga, 1e-6);
  check_close("db - db0", db_step, gb, 1e-6);
  std::vector<float> db_before = db;
  cpu::residual_backward(da.data(), nullptr, R.data(), kN);
  CHECK(db == db_before);
}
