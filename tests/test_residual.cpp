// Residual add (it has no backward op: the model passes dout on unchanged).
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
