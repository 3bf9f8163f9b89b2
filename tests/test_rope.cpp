// RoPE against the direct rotate_half formula, its norm preservation, and
// its backward against finite differences.
#include <cmath>
#include <vector>

#include "engine/error.h"
#include "engine/ops.h"
#include "tests/gradcheck.h"

using namespace switchlora;
using namespace switchlora::test;

constexpr float kTheta = 10000.0f;  // LLaMA's base

// HF LLaMA, written out per element in double:
//   out[i] = x[i] cos(a) - x[i + HS/2] sin(a),  out[i + HS/2] = x[i + HS/2] cos(a) + x[i] sin(a)
//   a = t * theta^(-2i/HS)
static std::vector<double> naive_rope(const std::vector<double>& x, int B, int T, int NH, int HS,
                                      double theta = kTheta) {
  std::vector<double> out(x.size());
  int half = HS / 2;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int h = 0; h < NH; h++)
        for (int i = 0; i < half; i++) {
          size_t o = (((size_t)b * T + t) * NH + h) * HS;
          double a = t * std::pow(theta, -2.0 * i / HS);
          out[o + i] = x[o + i] * std::cos(a) - x[o + i + half] * std::sin(a);
          out[o + i + half] = x[o + i + half] * std::cos(a) + x[o + i] * std::sin(a);
        }
  return out;
}

// Each output is two float products of float-rounded cos and sin: a few ulps
// (~2e-7) of an order-1 value; 1e-6 of the scale covers it. A wrong angle
// or pairing is an O(1) error.
constexpr double kTol = 1e-6;

TEST_CASE("rope matches the direct rotate_half formula up to position 200") {
  // T = 200: angles up to 199 rad, where a float angle would already be off.
  const int B = 2, T = 200, NH = 3, HS = 16;
  Rng rng{1, 0, 0};
  auto x = randn((size_t)B * T * NH * HS, rng);
  std::vector<float> out(x.size());
  cpu::rope_forward(out.data(), x.data(), B, T, NH, HS, kTheta);
  check_close("rope(x)", out, naive_rope(to_double(x), B, T, NH, HS), kTol);
}

// The cos/sin table is kept between calls (engine/cpu/rope.cpp): a call with
// another length, head size or base must not reuse it, and one back on the
// first shape must not either.
TEST_CASE("rope is right when the length, head size and base change from call to call") {
  const struct { int T, HS; float theta; } calls[] = {
      {200, 16, kTheta}, {7, 8, 500.0f}, {200, 16, 500.0f}, {200, 32, kTheta}, {300, 16, kTheta}, {7, 8, 500.0f}};
  Rng rng{5, 0, 0};
  for (const auto& c : calls) {
    CAPTURE(c.T);
    CAPTURE(c.HS);
    CAPTURE(c.theta);
    const int B = 1, NH = 2;
    auto x = randn((size_t)B * c.T * NH * c.HS, rng);
    std::vector<float> out(x.size());
    cpu::rope_forward(out.data(), x.data(), B, c.T, NH, c.HS, c.theta);
    check_close("rope(x)", out, naive_rope(to_double(x), B, c.T, NH, c.HS, c.theta), kTol);
  }
}

TEST_CASE("rope preserves the norm of every head vector") {
  const int B = 2, T = 50, NH = 4, HS = 32;
  Rng rng{2, 0, 0};
  auto x = randn((size_t)B * T * NH * HS, rng);
  std::vector<float> out(x.size());
  cpu::rope_forward(out.data(), x.data(), B, T, NH, HS, kTheta);
  double worst = 0.0;
  for (size_t o = 0; o < x.size(); o += HS) {
    double nx = 0.0, no = 0.0;
    for (int i = 0; i < HS; i++) nx += (double)x[o + i] * x[o + i], no += (double)out[o + i] * out[o + i];
    worst = std::max(worst, std::fabs(std::sqrt(no) - std::sqrt(nx)) / std::sqrt(nx));
  }
  // A rotation is exact; float cos/sin and products shift each element by a
  // few ulps, so the norm moves by ~1e-7 relative.
  INFO("worst relative norm change " << worst);
  CHECK(worst < 1e-6);
}

TEST_CASE("rope grads match finite differences and backward accumulates") {
  const int B = 2, T = 9, NH = 2, HS = 8;
  Rng rng{3, 0, 0};
  auto x = randn((size_t)B * T * NH * HS, rng), R = randn(x.size(), rng);
  std::vector<float> dx(x.size(), 0.0f);
  cpu::rope_backward(dx.data(), R.data(), B, T, NH, HS, kTheta);
  auto g = numeric_grad([&](const std::vector<double>& v) { return probe_loss(naive_rope(v, B, T, NH, HS), R); },
                        to_double(x));
  check_close("dx", dx, g, kTol);
  // A second call adds the same float values again: 0 + a + a = 2a exactly.
  std::vector<float> once = dx;
  cpu::rope_backward(dx.data(), R.data(), B, T, NH, HS, kTheta);
  for (size_t i = 0; i < dx.size(); i++) {
    INFO("dx[" << i << "]");
    REQUIRE(dx[i] == 2.0f * once[i]);
  }
  cpu::rope_backward(nullptr, R.data(), B, T, NH, HS, kTheta);  // null: skipped
}

TEST_CASE("rope rejects an odd head size and names it") {
  std::vector<float> x(3), out(3);
  CHECK_THROWS_WITH_AS(cpu::rope_forward(out.data(), x.data(), 1, 1, 1, 3, kTheta),
                       doctest::Contains("HS = 3"), Error);
}
