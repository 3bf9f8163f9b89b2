// Embedding lookup and its scatter-add backward.
#include <vector>

#include "engine/error.h"
#include "engine/ops.h"
#include "tests/gradcheck.h"

using namespace switchlora;
using namespace switchlora::test;

// N tokens over a small vocabulary, so that ids repeat and the backward must
// add several rows into one gradient row. C = 150 spans three channel blocks
// of the backward, the last one partial.
constexpr int kN = 24, kV = 5, kC = 150;

static std::vector<int32_t> random_tokens(Rng& rng) {
  std::vector<int32_t> t(kN);
  for (auto& v : t) v = (int32_t)rng.below(kV);
  return t;
}

static std::vector<double> naive_embedding(const std::vector<double>& wte, const std::vector<int32_t>& tok) {
  std::vector<double> out((size_t)kN * kC);
  for (int n = 0; n < kN; n++)
    for (int c = 0; c < kC; c++) out[(size_t)n * kC + c] = wte[(size_t)tok[n] * kC + c];
  return out;
}

TEST_CASE("embedding forward copies the rows of wte named by the tokens") {
  Rng rng{3, 0, 0};
  auto tok = random_tokens(rng);
  auto wte = randn((size_t)kV * kC, rng);
  std::vector<float> out((size_t)kN * kC);
  cpu::embedding_forward(out.data(), tok.data(), wte.data(), kN, kC);
  for (int n = 0; n < kN; n++)
    for (int c = 0; c < kC; c++) {
      INFO("n = " << n << " c = " << c << " token " << tok[n]);
      REQUIRE(out[(size_t)n * kC + c] == wte[(size_t)tok[n] * kC + c]);  // a copy: exact
    }
}

TEST_CASE("embedding grads match finite differences with repeated tokens") {
  Rng rng{4, 0, 0};
  auto tok = random_tokens(rng);
  auto wte = randn((size_t)kV * kC, rng), R = randn((size_t)kN * kC, rng);
  std::vector<float> dwte(wte.size(), 0.0f);
  cpu::embedding_backward(dwte.data(), R.data(), tok.data(), kN, kC);
  auto g = numeric_grad([&](const std::vector<double>& w) { return probe_loss(naive_embedding(w, tok), R); },
                        to_double(wte));
  // Each gradient entry is a float sum of at most kN = 24 order-1 values:
  // rounding stays below 24 * 6e-8 ~ 1.5e-6 of a term.
  check_close("dwte", dwte, g, 1e-5);
}

TEST_CASE("embedding_backward accumulates grads: two calls give twice one call") {
  Rng rng{5, 0, 0};
  auto tok = random_tokens(rng);
  auto dout = randn((size_t)kN * kC, rng);
  std::vector<float> once((size_t)kV * kC, 0.0f), twice = once;
  cpu::embedding_backward(once.data(), dout.data(), tok.data(), kN, kC);
  for (int rep = 0; rep < 2; rep++) cpu::embedding_backward(twice.data(), dout.data(), tok.data(), kN, kC);
  std::vector<double> want(once.begin(), once.end());
  for (double& v : want) v *= 2.0;
  // The second call adds its rows one by one onto the first call's sum, so the
  // rounding differs from doubling that sum: a few float ulps of the scale.
  check_close("dwte after two calls", twice, want, 1e-6);
  cpu::embedding_backward(nullptr, dout.data(), tok.data(), kN, kC);  // null: skipped, no write
}

TEST_CASE("embedding rejects a negative token id and names it") {
  std::vector<int32_t> tok = {0, 1, 2, -7};
  std::vector<float> wte(3 * 4, 0.0f), out(4 * 4);
  CHECK_THROWS_WITH_AS(cpu::embedding_forward(out.data(), tok.data(), wte.data(), 4, 4),
                       doctest::Contains("tokens[3] = -7"), Error);
}
