// Dropout (engine/cpu/dropout.cpp) against its formula: the mask is a pure
// function of (seed, stream, index), kept entries are scaled by 1 / (1 - p),
// and backward applies the very same mask to the gradient.
#include <cmath>
#include <vector>

#include "engine/ops.h"
#include "engine/rng.h"
#include "tests/gradcheck.h"

using namespace switchlora;
using namespace switchlora::test;

constexpr int kN = 20011;

TEST_CASE("dropout keeps a fraction 1 - p, scaled by 1 / (1 - p), the same mask for the same key") {
  Rng rng{3, 0, 0};
  const auto x = randn(kN, rng);
  const float p = 0.3f;
  std::vector<float> a(kN), b(kN), c(kN);
  cpu::dropout_forward(a.data(), x.data(), kN, p, 7, 11);
  cpu::dropout_forward(b.data(), x.data(), kN, p, 7, 11);
  cpu::dropout_forward(c.data(), x.data(), kN, p, 7, 12);
  CHECK(a == b);
  CHECK(a != c);  // another stream: another mask
  int kept = 0;
  for (int i = 0; i < kN; i++) {
    const bool keep = uniform01(7, 11, i) >= p;
    CHECK(a[i] == (keep ? x[i] * (1.0f / (1.0f - p)) : 0.0f));
    kept += keep;
  }
  // Binomial(n, 0.7): 5 standard deviations.
  CHECK(std::fabs(kept - 0.7 * kN) < 5 * std::sqrt(kN * 0.21));
}

TEST_CASE("dropout backward accumulates the same mask's scaled gradient, and is forward's derivative") {
  Rng rng{4, 0, 0};
  const auto dout = randn(kN, rng), dx0 = randn(kN, rng);
  const float p = 0.5f;
  std::vector<float> dx = dx0, fwd(kN);
  cpu::dropout_backward(dx.data(), dout.data(), kN, p, 9, 5);
  cpu::dropout_forward(fwd.data(), dout.data(), kN, p, 9, 5);
  // dropout is linear in x: its derivative applied to dout is forward(dout).
  for (int i = 0; i < kN; i++) CHECK(dx[i] == dx0[i] + fwd[i]);
}
