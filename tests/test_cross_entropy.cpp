// Fused log-softmax + cross-entropy against a naive log-softmax in double.
#include <cmath>
#include <limits>
#include <vector>

#include "engine/error.h"
#include "engine/ops.h"
#include "tests/gradcheck.h"

using namespace switchlora;
using namespace switchlora::test;

// Per-row losses -log softmax(logits)[target] in double; lse as a by-product.
static std::vector<double> naive_losses(const std::vector<double>& logits, const std::vector<int32_t>& tgt,
                                        int N, int V, std::vector<double>* lse = nullptr) {
  std::vector<double> loss(N);
  if (lse) lse->resize(N);
  for (int n = 0; n < N; n++) {
    const double* row = &logits[(size_t)n * V];
    double sum = 0.0;
    for (int v = 0; v < V; v++) sum += std::exp(row[v]);  // logits of order 1: no shift needed
    loss[n] = std::log(sum) - row[tgt[n]];
    if (lse) (*lse)[n] = std::log(sum);
  }
  return loss;
}

struct Inputs {
  int N, V;
  std::vector<float> logits;
  std::vector<int32_t> tgt;
  Inputs(int n, int v, uint64_t seed) : N(n), V(v) {
    Rng rng{seed, 0, 0};
    logits = randn((size_t)N * V, rng, 2.0f);
    tgt.resize(N);
    for (auto& t : tgt) t = (int32_t)rng.below(V);
  }
};

TEST_CASE("cross_entropy forward matches a naive log-softmax, also at V = 32100") {
  for (int V : {11, 32100}) {
    CAPTURE(V);
    Inputs in(9, V, 1);
    std::vector<float> losses(in.N), lse(in.N);
    float mean = cpu::cross_entropy_forward(losses.data(), lse.data(), in.logits.data(), in.tgt.data(), in.N, V);
    std::vector<double> want_lse;
    auto want = naive_losses(to_double(in.logits), in.tgt, in.N, V, &want_lse);
    // The exp-sum is taken in double, so the loss and lse carry only the
    // float rounding of the result and of the max shift: ~1e-7 relative.
    check_close("losses", losses, want, 1e-6);
    check_close("lse", lse, want_lse, 1e-6);
    double want_mean = 0.0;
    for (double l : want) want_mean += l / in.N;
    CHECK(mean == doctest::Approx(want_mean).epsilon(1e-6));
  }
}

TEST_CASE("cross_entropy is unchanged by adding 1000 to every logit") {
  Inputs in(5, 50, 2);
  std::vector<float> l1(in.N), l2(in.N), lse(in.N);
  cpu::cross_entropy_forward(l1.data(), lse.data(), in.logits.data(), in.tgt.data(), in.N, in.V);
  for (float& x : in.logits) x += 1000.0f;
  cpu::cross_entropy_forward(l2.data(), lse.data(), in.logits.data(), in.tgt.data(), in.N, in.V);
  // The shift itself rounds each logit to a float ulp of 1000 (6e-5), which is
  // the only change the losses can see.
  std::vector<double> want(l1.begin(), l1.end());
  for (int n = 0; n < in.N; n++) {
    INFO("n = " << n << ": " << l1[n] << " vs " << l2[n]);
    CHECK(std::fabs(l2[n] - l1[n]) < 3e-4);
  }
}

TEST_CASE("cross_entropy grads match finite differences of the scaled loss") {
  Inputs in(6, 13, 3);
  const float scale = 1.0f / in.N;  // the mean loss
  std::vector<float> losses(in.N), lse(in.N), dlogits(in.logits.size(), 0.0f);
  cpu::cross_entropy_forward(losses.data(), lse.data(), in.logits.data(), in.tgt.data(), in.N, in.V);
  cpu::cross_entropy_backward(dlogits.data(), in.logits.data(), lse.data(), in.tgt.data(), scale, in.N, in.V);
  auto g = numeric_grad(
      [&](const std::vector<double>& x) {
        double L = 0.0;
        for (double l : naive_losses(x, in.tgt, in.N, in.V)) L += scale * l;
        return L;
      },
      to_double(in.logits));
  // scale * (p - onehot) with p a float exp of a float difference: a few
  // ulps of values below 1 / N.
  check_close("dlogits", dlogits, g, 1e-5);
}

// Unlike the other backward ops it overwrites (the model calls it in place,
// on the logits themselves), so what dlogits held must not leak in.
TEST_CASE("cross_entropy_backward overwrites dlogits, gives the same bits in place, and skips a null pointer") {
  Inputs in(4, 17, 4);
  std::vector<float> losses(in.N), lse(in.N);
  cpu::cross_entropy_forward(losses.data(), lse.data(), in.logits.data(), in.tgt.data(), in.N, in.V);
  std::vector<float> fresh(in.logits.size(), 0.0f), dirty(in.logits.size(), std::numeric_limits<float>::quiet_NaN());
  cpu::cross_entropy_backward(fresh.data(), in.logits.data(), lse.data(), in.tgt.data(), 0.25f, in.N, in.V);
  cpu::cross_entropy_backward(dirty.data(), in.logits.data(), lse.data(), in.tgt.data(), 0.25f, in.N, in.V);
  CHECK(dirty == fresh);
  std::vector<float> in_place = in.logits;
  cpu::cross_entropy_backward(in_place.data(), in_place.data(), lse.data(), in.tgt.data(), 0.25f, in.N, in.V);
  CHECK(in_place == fresh);
  const std::vector<float> before = in.logits;
  cpu::cross_entropy_backward(nullptr, in.logits.data(), lse.data(), in.tgt.data(), 0.25f, in.N, in.V);
  CHECK(in.logits == before);
}

TEST_CASE("cross_entropy of a row with a NaN logit is NaN, other rows unaffected") {
  Inputs in(3, 40, 6);
  in.logits[1 * 40 + 17] = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> losses(in.N), lse(in.N);
  cpu::cross_entropy_forward(losses.data(), lse.data(), in.logits.data(), in.tgt.data(), in.N, in.V);
  CHECK(std::isfinite(losses[0]));
  CHECK(std::isnan(losses[1]));  // a diverged model must not report a finite loss
  CHECK(std::isfinite(losses[2]));
}

TEST_CASE("cross_entropy rejects a target outside the vocabulary and names it") {
  Inputs in(3, 11, 5);
  in.tgt[2] = 11;
  std::vector<float> losses(in.N), lse(in.N);
  CHECK_THROWS_WITH_AS(cpu::cross_entropy_forward(losses.data(), lse.data(), in.logits.data(), in.tgt.data(), in.N, in.V),
                       doctest::Contains("targets[2] = 11"), Error);
}
