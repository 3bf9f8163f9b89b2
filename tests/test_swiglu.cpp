// SwiGLU against its formula and finite differences.
#include <cmath>
#include <vector>

#include "engine/ops.h"
#include "tests/gradcheck.h"

using namespace switchlora;
using namespace switchlora::test;

static std::vector<double> naive_swiglu(const std::vector<double>& gate, const std::vector<double>& up) {
  std::vector<double> out(gate.size());
  for (size_t i = 0; i < gate.size(); i++) out[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
  return out;
}

// Elementwise: a float exp and a few products, each within an ulp or two, so
// every element is good to ~5e-7 relative; 1e-5 of the scale covers it.
constexpr double kTol = 1e-5;
constexpr int kN = 333;  // not a multiple of the vector width

TEST_CASE("swiglu forward matches silu(gate) * up") {
  Rng rng{1, 0, 0};
  auto gate = randn(kN, rng, 3.0f), up = randn(kN, rng);
  std::vector<float> out(kN);
  cpu::swiglu_forward(out.data(), gate.data(), up.data(), kN);
  check_close("out", out, naive_swiglu(to_double(gate), to_double(up)), kTol);
}

TEST_CASE("swiglu grads match finite differences for gate and up") {
  Rng rng{2, 0, 0};
  auto gate = randn(kN, rng, 3.0f), up = randn(kN, rng), R = randn(kN, rng);
  std::vector<float> dgate(kN, 0.0f), dup(kN, 0.0f);
  cpu::swiglu_backward(dgate.data(), dup.data(), R.data(), gate.data(), up.data(), kN);
  auto gd = to_double(gate), ud = to_double(up);
  auto gg = numeric_grad([&](const std::vector<double>& v) { return probe_loss(naive_swiglu(v, ud), R); }, gd);
  auto gu = numeric_grad([&](const std::vector<double>& v) { return probe_loss(naive_swiglu(gd, v), R); }, ud);
  check_close("dgate", dgate, gg, kTol);
  check_close("dup", dup, gu, kTol);
}

// Both gradients take one fused pass, one alone its own loop: all three
// paths must give the same bits.
TEST_CASE("swiglu_backward accumulates grads and skips a null grad pointer") {
  Rng rng{3, 0, 0};
  auto gate = randn(kN, rng, 3.0f), up = randn(kN, rng), dout = randn(kN, rng);
  std::vector<float> dg1(kN, 0.0f), du1(kN, 0.0f), dg2 = dg1, du2 = du1, du3 = du1;
  cpu::swiglu_backward(dg1.data(), du1.data(), dout.data(), gate.data(), up.data(), kN);
  cpu::swiglu_backward(dg2.data(), nullptr, dout.data(), gate.data(), up.data(), kN);
  cpu::swiglu_backward(dg2.data(), du2.data(), dout.data(), gate.data(), up.data(), kN);
  cpu::swiglu_backward(nullptr, du3.data(), dout.data(), gate.data(), up.data(), kN);
  // The same float value added twice: 0 + a + a = 2a exactly.
  for (int i = 0; i < kN; i++) {
    INFO("i = " << i);
    REQUIRE(dg2[i] == 2.0f * dg1[i]);
    REQUIRE(du2[i] == du1[i]);
    REQUIRE(du3[i] == du1[i]);
  }
}

TEST_CASE("swiglu and its grads stay finite for gates far in the sigmoid's tails") {
  std::vector<float> gate = {-1000.0f, -100.0f, -30.0f, 30.0f, 100.0f, 1000.0f}, up(6, 2.0f), dout(6, 1.0f);
  std::vector<float> out(6), dg(6, 0.0f), du(6, 0.0f);
  cpu::swiglu_forward(out.data(), gate.data(), up.data(), 6);
  cpu::swiglu_backward(dg.data(), du.data(), dout.data(), gate.data(), up.data(), 6);
  for (int i = 0; i < 6; i++) {
    INFO("gate " << gate[i] << ": out " << out[i] << " dgate " << dg[i] << " dup " << du[i]);
    CHECK(std::isfinite(out[i]));
    CHECK(std::isfinite(dg[i]));
    CHECK(std::isfinite(du[i]));
    // silu(x) -> x for large x, -> 0 for very negative x (|silu(-30)| ~ 3e-12).
    if (gate[i] > 0) CHECK(out[i] == doctest::Approx(2.0 * gate[i]));
    else CHECK(std::fabs(out[i]) < 1e-10f);
  }
}
