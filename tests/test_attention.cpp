// Causal attention against the textbook softmax(Q K^T / sqrt(HS) + mask) V,
// and its flash-style backward against finite differences.
#include <cmath>
#include <vector>

#include "engine/ops.h"
#include "tests/gradcheck.h"

using namespace switchlora;
using namespace switchlora::test;

struct Dims {
  int B, T, NH, HS;
  size_t size() const { return (size_t)B * T * NH * HS; }
  size_t at(int b, int t, int h) const { return (((size_t)b * T + t) * NH + h) * HS; }
};

// The whole (T, T) score matrix per (b, h), the causal mask as -inf, softmax
// in double. Also returns each row's log-sum-exp in lse (B, NH, T).
static std::vector<double> naive_attention(const std::vector<double>& q, const std::vector<double>& k,
                                           const std::vector<double>& v, Dims d,
                                           std::vector<double>* lse = nullptr) {
  std::vector<double> out(d.size(), 0.0);
  if (lse) lse->assign((size_t)d.B * d.NH * d.T, 0.0);
  std::vector<double> S((size_t)d.T * d.T);
  for (int b = 0; b < d.B; b++)
    for (int h = 0; h < d.NH; h++) {
      for (int t = 0; t < d.T; t++)
        for (int s = 0; s < d.T; s++) {
          double dot = 0.0;
          for (int i = 0; i < d.HS; i++) dot += q[d.at(b, t, h) + i] * k[d.at(b, s, h) + i];
          S[(size_t)t * d.T + s] = s <= t ? dot / std::sqrt((double)d.HS) : -INFINITY;
        }
      for (int t = 0; t < d.T; t++) {
        double* row = &S[(size_t)t * d.T];
        double mx = -INFINITY, sum = 0.0;
        for (int s = 0; s < d.T; s++) mx = std::max(mx, row[s]);
        for (int s = 0; s < d.T; s++) sum += std::exp(row[s] - mx);
        if (lse) (*lse)[((size_t)b * d.NH + h) * d.T + t] = mx + std::log(sum);
        for (int s = 0; s < d.T; s++)
          for (int i = 0; i < d.HS; i++)
            out[d.at(b, t, h) + i] += std::exp(row[s] - mx) / sum * v[d.at(b, s, h) + i];
      }
    }
  return out;
}

struct Inputs {
  Dims d;
  std::vector<float> q, k, v, R;
  Inputs(Dims dims, uint64_t seed) : d(dims) {
    Rng rng{seed, 0, 0};
    q = randn(d.size(), rng), k = randn(d.size(), rng), v = randn(d.size(), rng), R = randn(d.size(), rng);
  }
};

// Outputs are convex combinations of order-1 values with float softmax
// weights (float exp, float sums of <= T terms): ~1e-6 of the scale at
// T = 70. The backward adds T-term float sums of such products. 1e-5 of the
// scale covers both; a wrong mask, scale or term is an O(1) error.
constexpr double kTol = 1e-5;

TEST_CASE("attention forward matches naive softmax(QK^T/sqrt(HS) + causal mask) V and its lse") {
  for (Dims d : {Dims{2, 13, 3, 8}, Dims{1, 70, 2, 32}}) {
    CAPTURE(d.T);
    Inputs in(d, 1);
    std::vector<float> out(d.size()), lse((size_t)d.B * d.NH * d.T);
    cpu::attention_forward(out.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), d.B, d.T, d.NH, d.HS);
    std::vector<double> want_lse;
    auto want = naive_attention(to_double(in.q), to_double(in.k), to_double(in.v), d, &want_lse);
    check_close("out", out, want, kTol);
    check_close("lse", lse, want_lse, kTol);
  }
}

TEST_CASE("attention output at position t ignores keys and values after t") {
  Dims d{1, 10, 2, 8};
  Inputs in(d, 2);
  std::vector<float> out1(d.size()), out2(d.size()), lse(d.B * d.NH * d.T);
  cpu::attention_forward(out1.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), d.B, d.T, d.NH, d.HS);
  for (size_t i = d.at(0, 6, 0); i < d.size(); i++) in.k[i] += 5.0f, in.v[i] -= 5.0f;  // change t >= 6
  cpu::attention_forward(out2.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), d.B, d.T, d.NH, d.HS);
  for (size_t i = 0; i < d.at(0, 6, 0); i++) {
    INFO("element " << i << " (t = " << i / (d.NH * d.HS) << ")");
    REQUIRE(out1[i] == out2[i]);  // the same float computation: bit-exact
  }
  CHECK(out1[d.at(0, 6, 0)] != out2[d.at(0, 6, 0)]);
}

TEST_CASE("attention grads match finite differences for q, k and v") {
  // T = 70 spans a full query tile of the backward and a partial one.
  for (Dims d : {Dims{2, 6, 2, 4}, Dims{1, 70, 1, 4}}) {
    CAPTURE(d.T);
    Inputs in(d, 3);
    std::vector<float> out(d.size()), lse(d.B * d.NH * d.T);
    cpu::attention_forward(out.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), d.B, d.T, d.NH, d.HS);
    std::vector<float> dq(d.size(), 0.0f), dk(d.size(), 0.0f), dv(d.size(), 0.0f);
    cpu::attention_backward(dq.data(), dk.data(), dv.data(), in.R.data(), in.q.data(), in.k.data(), in.v.data(),
                            out.data(), lse.data(), d.B, d.T, d.NH, d.HS);
    auto qd = to_double(in.q), kd = to_double(in.k), vd = to_double(in.v);
    auto gq = numeric_grad([&](const std::vector<double>& x) { return probe_loss(naive_attention(x, kd, vd, d), in.R); }, qd);
    auto gk = numeric_grad([&](const std::vector<double>& x) { return probe_loss(naive_attention(qd, x, vd, d), in.R); }, kd);
    auto gv = numeric_grad([&](const std::vector<double>& x) { return probe_loss(naive_attention(qd, kd, x, d), in.R); }, vd);
    check_close("dq", dq, gq, kTol);
    check_close("dk", dk, gk, kTol);
    check_close("dv", dv, gv, kTol);
  }
}

TEST_CASE("attention_backward accumulates grads and skips null grad pointers") {
  Dims d{2, 11, 3, 8};
  Inputs in(d, 4);
  std::vector<float> out(d.size()), lse(d.B * d.NH * d.T);
  cpu::attention_forward(out.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), d.B, d.T, d.NH, d.HS);
  auto backward = [&](float* dq, float* dk, float* dv) {
    cpu::attention_backward(dq, dk, dv, in.R.data(), in.q.data(), in.k.data(), in.v.data(), out.data(),
                            lse.data(), d.B, d.T, d.NH, d.HS);
  };
  std::vector<float> dq1(d.size(), 0.0f), dk1 = dq1, dv1 = dq1;
  backward(dq1.data(), dk1.data(), dv1.data());
  // dq twice; dk once (null the other time); dv never.
  std::vector<float> dq2(d.size(), 0.0f), dk2 = dq2, dv2 = dq2;
  backward(dq2.data(), dk2.data(), nullptr);
  backward(dq2.data(), nullptr, nullptr);
  backward(nullptr, nullptr, nullptr);
  // Each call adds the same per-head float sums: 0 + a + a = 2a exactly.
  for (size_t i = 0; i < dq1.size(); i++) {
    INFO("dq[" << i << "]");
    REQUIRE(dq2[i] == 2.0f * dq1[i]);
  }
  CHECK(dk2 == dk1);  // a null dq does not change how dk is computed
  CHECK(dv2 == std::vector<float>(d.size(), 0.0f));
}
