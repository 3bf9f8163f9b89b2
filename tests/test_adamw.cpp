// AdamW (optim/adamw.cpp) against the update of optim/adamw.h written out
// once more, element by element, in double:
//   k += 1
//   m = b1 m + (1 - b1) g          v = b2 v + (1 - b2) g^2
//   p = p - lr wd p
//   p = p - lr (m / (1 - b1^k)) / (sqrt(v / (1 - b2^k)) + eps)
// which is torch.optim.AdamW's update (weight decay first, then the step).
//
// Tolerances, with u = 2^-24 = 6e-8 the unit roundoff of float:
// - p: the engine rounds p once per step (it folds the decay into the Adam
//   step) and the rounding of the step itself is ~u of lr, far below u of p
//   for |p| >= 0.4 and lr = 1e-2. Ten steps: <= 10 u = 6e-7 < 1e-6 relative.
// - m: |m| <= G = max|g| of the element; each step rounds b1 m, (1-b1) g and
//   their sum, <= 2.1 u G, and old errors shrink by b1: over ten steps
//   <= 2.1 u G (1 - 0.9^10) / 0.1 = 8e-7 G < 1e-6 G.
// - v: a sum of positive terms, <= 2 u v per step (g^2 and the scaled
//   terms), not shrinking since b2 ~ 1: ten steps <= 20 u = 1.2e-6 -> 2e-6.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/rng.h"
#include "optim/adamw.h"

using namespace switchlora;

namespace {

struct RefElement {
  double p = 0, m = 0, v = 0;
  int64_t k = 0;
};

void ref_step(RefElement& e, double g, double lr, const AdamWConfig& c) {
  const double b1 = c.beta1, b2 = c.beta2;
  e.k += 1;
  e.m = b1 * e.m + (1 - b1) * g;
  e.v = b2 * e.v + (1 - b2) * g * g;
  e.p = e.p - lr * c.weight_decay * e.p;
  e.p = e.p - lr * (e.m / (1 - std::pow(b1, e.k))) / (std::sqrt(e.v / (1 - std::pow(b2, e.k))) + c.eps);
}

// |p| in [0.5, 1.5): far from 0, so a relative tolerance on p means something.
float away_from_zero(Rng& rng) {
  float magnitude = 0.5f + rng.uniform();
  return rng.uniform() < 0.5f ? -magnitude : magnitude;
}

// The engine's state against the reference; fails with the worst element.
struct Tracker {
  std::vector<RefElement> ref;
  std::vector<double> gmax;   // G of each element: the largest |g| it has seen

  void check(const std::vector<float>& p, AdamW& opt, int step) {
    double wp = 0, wm = 0, wv = 0;
    size_t ip = 0, im = 0, iv = 0;
    for (size_t i = 0; i < ref.size(); i++) {
      double ep = std::fabs(p[i] - ref[i].p) / std::fabs(ref[i].p);
      double em = gmax[i] > 0 ? std::fabs(opt.m()[i] - ref[i].m) / gmax[i] : 0.0;
      double ev = ref[i].v > 0 ? std::fabs(opt.v()[i] - ref[i].v) / ref[i].v : 0.0;
      if (ep > wp) wp = ep, ip = i;
      if (em > wm) wm = em, im = i;
      if (ev > wv) wv = ev, iv = i;
    }
    INFO("step " << step << ": p[" << ip << "] = " << p[ip] << " vs " << ref[ip].p
                 << ", m[" << im << "] = " << opt.m()[im] << " vs " << ref[im].m
                 << ", v[" << iv << "] = " << opt.v()[iv] << " vs " << ref[iv].v);
    CHECK(wp <= 1e-6);
    CHECK(wm <= 1e-6);
    CHECK(wv <= 2e-6);
  }
};

// Gradients from 1e-9 to 1 in size, so that eps = 1e-8 matters for some.
std::vector<float> grad_scales(Rng& rng, size_t n) {
  std::vector<float> s(n);
  for (float& x : s) x = std::pow(10.0f, -9.0f * rng.uniform());
  return s;
}

std::string error_of(auto&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("per-tensor AdamW follows the double-precision formula over ten steps with weight decay") {
  Rng rng{11, 300, 0};
  const int rows = 37, cols = 129;
  const size_t n = (size_t)rows * cols;
  AdamWConfig config;
  config.weight_decay = 0.1f;
  std::vector<float> p(n), g(n);
  AdamW opt(config, {{"w", p.data(), g.data(), rows, cols, StepCounter::kPerTensor, nullptr}});
  const float lr = 1e-2f;

  Tracker t{std::vector<RefElement>(n), std::vector<double>(n, 0.0)};
  for (size_t i = 0; i < n; i++) t.ref[i].p = p[i] = away_from_zero(rng);
  std::vector<float> scale = grad_scales(rng, n);

  for (int step = 1; step <= 10; step++) {
    for (size_t i = 0; i < n; i++) {
      g[i] = scale[i] * rng.normal();
      t.gmax[i] = std::max(t.gmax[i], (double)std::fabs(g[i]));
      ref_step(t.ref[i], g[i], lr, config);
    }
    opt.step(lr);
    CHECK(opt.counter(0, 0) == step);
    t.check(p, opt, step);
  }
}

TEST_CASE("resetting a row or a column restarts its own bias correction while the others keep counting") {
  Rng rng{12, 301, 0};
  // A LoRA pair: A is (r, in) with a counter per row, B is (out, r) with a
  // counter per column; one buffer holds both, B after A.
  const int r = 6, in = 50, out = 40;
  const size_t nA = (size_t)r * in, nB = (size_t)out * r, n = nA + nB;
  AdamWConfig config;
  config.weight_decay = 0.05f;
  std::vector<float> p(n), g(n);
  AdamW opt(config,
            {{"A", p.data(), g.data(), r, in, StepCounter::kPerRow, nullptr},
             {"B", p.data() + nA, g.data() + nA, out, r, StepCounter::kPerColumn, nullptr}});
  const float lr = 1e-2f;
  // The vector each element counts with: A's row, or r + B's column.
  auto vector_of = [&](size_t i) { return i < nA ? (int)(i / in) : r + (int)((i - nA) % r); };

  Tracker t{std::vector<RefElement>(n), std::vector<double>(n, 0.0)};
  for (size_t i = 0; i < n; i++) t.ref[i].p = p[i] = away_from_zero(rng);
  auto one_step = [&](int step) {
    for (size_t i = 0; i < n; i++) {
      g[i] = rng.normal();
      t.gmax[i] = std::max(t.gmax[i], (double)std::fabs(g[i]));
      ref_step(t.ref[i], g[i], lr, config);
    }
    opt.step(lr);
    t.check(p, opt, step);
  };
  for (int step = 1; step <= 4; step++) one_step(step);

  // Full reset of A row 2 and B column 3; moments only for A row 4 and B column 1.
  const int full_a = 2, full_b = 3, moments_a = 4, moments_b = 1;
  opt.reset_vectors(0, full_a, full_a + 1, true, true);
  opt.reset_vectors(1, full_b, full_b + 1, true, true);
  opt.reset_vectors(0, moments_a, moments_a + 1, true, false);
  opt.reset_vectors(1, moments_b, moments_b + 1, true, false);
  for (size_t i = 0; i < n; i++) {
    int vec = vector_of(i);
    bool full = vec == full_a || vec == r + full_b;
    bool moments = full || vec == moments_a || vec == r + moments_b;
    if (moments) {
      t.ref[i].m = t.ref[i].v = 0.0;
      t.gmax[i] = 0.0;
      CHECK(opt.m()[i] == 0.0f);
      CHECK(opt.v()[i] == 0.0f);
    }
    if (full) t.ref[i].k = 0;
  }
  CHECK(opt.counter(0, full_a) == 0);
  CHECK(opt.counter(1, full_b) == 0);
  CHECK(opt.counter(0, moments_a) == 4);
  CHECK(opt.counter(1, moments_b) == 4);

  const std::vector<float> before = p;
  one_step(5);

  // The closed forms, from the float values before the step. With m = v = 0:
  //   k = 1:  m / (1 - b1) = g,  v / (1 - b2) = g^2  ->  step lr g / (|g| + eps)
  //   k = 5:  step lr (1-b1) g / (1-b1^5) / (sqrt((1-b2) / (1-b2^5)) |g| + eps)
  // Tolerance: one rounding of p (6e-8 relative), as for the trajectory.
  const double b1 = config.beta1, b2 = config.beta2, eps = config.eps, wd = config.weight_decay;
  double worst = 0.0;
  size_t worst_i = 0;
  for (size_t i = 0; i < n; i++) {
    int vec = vector_of(i);
    bool full = vec == full_a || vec == r + full_b;
    bool moments_only = vec == moments_a || vec == r + moments_b;
    if (!full && !moments_only) continue;
    const double p0 = before[i], gi = g[i];
    double update = full ? lr * gi / (std::fabs(gi) + eps)
                         : lr * (1 - b1) * gi / (1 - std::pow(b1, 5)) /
                               (std::sqrt((1 - b2) / (1 - std::pow(b2, 5))) * std::fabs(gi) + eps);
    double expected = p0 - lr * wd * p0 - update;
    double err = std::fabs(p[i] - expected) / std::fabs(expected);
    if (err > worst) worst = err, worst_i = i;
  }
  INFO("element " << worst_i << " of vector " << vector_of(worst_i) << ": " << before[worst_i]
                  << " -> " << p[worst_i] << " with g = " << g[worst_i]);
  CHECK(worst <= 1e-6);

  for (int i = 0; i < r; i++) {
    CAPTURE(i);
    CHECK(opt.counter(0, i) == (i == full_a ? 1 : 5));
    CHECK(opt.counter(1, i) == (i == full_b ? 1 : 5));
  }
  for (int step = 6; step <= 8; step++) one_step(step);
}

TEST_CASE("frozen vectors keep parameters and state bit for bit while the others update") {
  Rng rng{13, 302, 0};
  const int rows = 8, cols = 24;
  const size_t nt = (size_t)rows * cols, n = 4 * nt;
  std::vector<uint8_t> frozen_tensor(1, 0), frozen_rows(rows, 0), frozen_cols(cols, 0);
  AdamWConfig config;
  config.weight_decay = 0.1f;   // a frozen vector must not even decay
  std::vector<float> p(n), g(n);
  AdamW opt(config,
            {{"tensor", p.data(), g.data(), rows, cols, StepCounter::kPerTensor, frozen_tensor.data()},
             {"rows", p.data() + nt, g.data() + nt, rows, cols, StepCounter::kPerRow, frozen_rows.data()},
             {"cols", p.data() + 2 * nt, g.data() + 2 * nt, rows, cols, StepCounter::kPerColumn, frozen_cols.data()},
             {"free", p.data() + 3 * nt, g.data() + 3 * nt, rows, cols, StepCounter::kPerTensor, nullptr}});
  const float lr = 1e-2f;
  Tracker t{std::vector<RefElement>(n), std::vector<double>(n, 0.0)};
  for (size_t i = 0; i < n; i++) t.ref[i].p = p[i] = away_from_zero(rng);
  auto frozen = [&](size_t i) {
    size_t tensor = i / nt, e = i % nt;
    if (tensor == 0) return frozen_tensor[0] != 0;
    if (tensor == 1) return frozen_rows[e / cols] != 0;
    if (tensor == 2) return frozen_cols[e % cols] != 0;
    return false;
  };

  for (int step = 1; step <= 6; step++) {
    // Steps 1-2 run free, so the frozen vectors hold state worth keeping;
    // steps 3-6 freeze the tensor, rows 1 and 6, columns 0, 7 and 23.
    if (step == 3) {
      frozen_tensor[0] = 1;
      frozen_rows[1] = frozen_rows[6] = 1;
      frozen_cols[0] = frozen_cols[7] = frozen_cols[23] = 1;
    }
    const std::vector<float> p0 = p, m0 = opt.m(), v0 = opt.v();
    const std::vector<int64_t> k0 = opt.counters();
    for (size_t i = 0; i < n; i++) {
      g[i] = rng.normal();
      if (frozen(i)) continue;
      t.gmax[i] = std::max(t.gmax[i], (double)std::fabs(g[i]));
      ref_step(t.ref[i], g[i], lr, config);
    }
    opt.step(lr);
    t.check(p, opt, step);

    size_t changed_frozen = n, unchanged_free = n;
    for (size_t i = 0; i < n; i++) {
      bool same = std::memcmp(&p[i], &p0[i], 4) == 0 && std::memcmp(&opt.m()[i], &m0[i], 4) == 0 &&
                  std::memcmp(&opt.v()[i], &v0[i], 4) == 0;
      if (frozen(i) && !same) changed_frozen = i;
      if (!frozen(i) && p[i] == p0[i]) unchanged_free = i;
    }
    INFO("step " << step << ": frozen element changed: " << changed_frozen
                 << ", free element not updated: " << unchanged_free << " (" << n << " = none)");
    CHECK(changed_frozen == n);
    CHECK(unchanged_free == n);

    const int64_t expected_tensor = k0[0] + (frozen_tensor[0] ? 0 : 1);
    CHECK(opt.counter(0, 0) == expected_tensor);
    for (int i = 0; i < rows; i++) {
      CAPTURE(i);
      CHECK(opt.counter(1, i) == k0[1 + i] + (frozen_rows[i] ? 0 : 1));
    }
    for (int j = 0; j < cols; j++) {
      CAPTURE(j);
      CHECK(opt.counter(2, j) == k0[1 + rows + j] + (frozen_cols[j] ? 0 : 1));
    }
    CHECK(opt.counter(3, 0) == step);
  }
}

TEST_CASE("bad layouts and bad resets are errors that name the parameter and the values") {
  AdamWConfig config;
  std::vector<float> p(144), g(144);
  std::string e = error_of([&] {
    AdamW opt(config, {{"wq", p.data(), g.data(), 0, 8, StepCounter::kPerTensor, nullptr}});
  });
  CHECK(e.find("'wq'") != std::string::npos);
  CHECK(e.find("(0, 8)") != std::string::npos);

  e = error_of([&] {
    AdamW opt(config,
              {{"wq", p.data(), g.data(), 4, 8, StepCounter::kPerTensor, nullptr},
               {"wk", p.data() + 30, g.data() + 30, 4, 8, StepCounter::kPerTensor, nullptr}});
  });
  CHECK(e.find("'wk'") != std::string::npos);
  CHECK(e.find("overlaps") != std::string::npos);

  config.beta2 = 1.0f;
  e = error_of([&] { AdamW opt(config, {}); });
  CHECK(e.find("beta2") != std::string::npos);
  config.beta2 = 0.999f;

  AdamW opt(config,
            {{"norm", p.data(), g.data(), 1, 16, StepCounter::kPerTensor, nullptr},
             {"lora_A", p.data() + 16, g.data() + 16, 4, 16, StepCounter::kPerRow, nullptr},
             {"lora_B", p.data() + 80, g.data() + 80, 16, 4, StepCounter::kPerColumn, nullptr}});
  e = error_of([&] { opt.reset_vectors(3, 0, 1, true, true); });
  CHECK(e.find("parameter index 3") != std::string::npos);
  e = error_of([&] { opt.reset_vectors(-1, 0, 1, true, true); });
  CHECK(e.find("parameter index -1") != std::string::npos);
  e = error_of([&] { opt.reset_vectors(1, 2, 5, true, true); });
  CHECK(e.find("'lora_A'") != std::string::npos);
  CHECK(e.find("[2, 5)") != std::string::npos);
  e = error_of([&] { opt.reset_vectors(2, 3, 1, true, true); });
  CHECK(e.find("'lora_B'") != std::string::npos);
  CHECK(e.find("[3, 1)") != std::string::npos);
  e = error_of([&] { opt.reset_vectors(0, 0, 2, true, true); });
  CHECK(e.find("'norm'") != std::string::npos);
  CHECK(e.find("[0, 2)") != std::string::npos);
  CHECK(error_of([&] { opt.reset_vectors(1, 0, 4, true, true); }).empty());
  e = error_of([&] { (void)opt.counter(2, 4); });
  CHECK(e.find("'lora_B'") != std::string::npos);
  CHECK(e.find("4") != std::string::npos);
}
