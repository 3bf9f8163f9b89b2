// Global-norm gradient clipping (optim/clip.cpp) against a serial double sum.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <omp.h>

#include "engine/ops.h"
#include "engine/rng.h"
#include "optim/adamw.h"

using namespace switchlora;

namespace {

double norm_of(const std::vector<float>& g) {
  double sum = 0.0;
  for (float x : g) sum += (double)x * x;
  return std::sqrt(sum);
}

// An odd length, so the OpenMP chunks and the vector tails are uneven.
std::vector<float> random_grads(uint64_t stream, size_t n, float scale) {
  Rng rng{7, stream, 0};
  std::vector<float> g(n);
  for (float& x : g) x = scale * rng.normal();
  return g;
}

}  // namespace

TEST_CASE("clipping returns the double-precision norm and scales the gradients to max_norm") {
  std::vector<float> g = random_grads(200, 100003, 0.01f);
  const std::vector<float> before = g;
  const double norm = norm_of(g);
  const float max_norm = (float)(norm / 3.0);

  float returned = clip_grad_norm(g.data(), g.size(), max_norm);
  // Both sums run in double (relative error ~ n * 1e-16, whatever the order);
  // the result is then rounded to float once: 2^-24 = 6e-8 relative.
  INFO("returned " << returned << ", double reference " << norm);
  CHECK(std::fabs(returned - norm) <= 1e-6 * norm);

  // Each element is multiplied by one float scale (rounded: 6e-8) and the
  // product rounded again (6e-8): the new norm is max_norm to ~1.2e-7.
  const double after = norm_of(g);
  INFO("norm after clipping " << after << ", max_norm " << max_norm);
  CHECK(std::fabs(after - max_norm) <= 1e-6 * max_norm);

  // The direction is kept: every element is scaled by the same factor.
  const double scale = max_norm / norm;
  double worst = 0.0;
  size_t worst_i = 0;
  for (size_t i = 0; i < g.size(); i++) {
    if (before[i] == 0.0f) continue;
    double err = std::fabs(g[i] / (scale * before[i]) - 1.0);
    if (err > worst) worst = err, worst_i = i;
  }
  INFO("element " << worst_i << ": " << before[worst_i] << " -> " << g[worst_i]
                  << ", expected factor " << scale);
  CHECK(worst <= 1e-6);   // same two roundings as above
}

TEST_CASE("gradients whose norm is at most max_norm are left bit for bit") {
  std::vector<float> g = random_grads(201, 4099, 1.0f);
  const std::vector<float> before = g;
  const double norm = norm_of(g);
  float returned = clip_grad_norm(g.data(), g.size(), (float)(2.0 * norm));
  CHECK(std::fabs(returned - norm) <= 1e-6 * norm);   // as in the test above
  CHECK(std::memcmp(g.data(), before.data(), g.size() * sizeof(float)) == 0);

  // max_norm <= 0 switches clipping off but still reports the norm.
  returned = clip_grad_norm(g.data(), g.size(), 0.0f);
  CHECK(std::fabs(returned - norm) <= 1e-6 * norm);
  CHECK(std::memcmp(g.data(), before.data(), g.size() * sizeof(float)) == 0);
}

TEST_CASE("a non-finite norm is returned and the gradients are left for the caller to report") {
  std::vector<float> g = random_grads(202, 1001, 1.0f);
  g[500] = std::numeric_limits<float>::infinity();
  const std::vector<float> before = g;
  float returned = clip_grad_norm(g.data(), g.size(), 1.0f);
  CHECK(std::isinf(returned));
  CHECK(std::memcmp(g.data(), before.data(), g.size() * sizeof(float)) == 0);
}

// The sum of squares behind the norm (engine/cpu/update.cpp): the serial
// double sum to double rounding whatever the length (shorter than the
// threads, shorter than its lanes, uneven tails), and the same bits on
// every call with the same threads.
TEST_CASE("sum_squares is the double sum at every length and repeats its bits") {
  const int threads_before = omp_get_max_threads();
  for (size_t n : {0, 1, 3, 15, 16, 17, 33, 100003}) {
    CAPTURE(n);
    const std::vector<float> g = random_grads(300 + n, n, 1.0f);
    const double want = norm_of(g) * norm_of(g);
    for (int threads : {1, 2, 3}) {
      CAPTURE(threads);
      omp_set_num_threads(threads);
      const double got = cpu::sum_squares(g.data(), n);
      CHECK(std::fabs(got - want) <= 1e-12 * want);
      CHECK(cpu::sum_squares(g.data(), n) == got);
    }
  }
  omp_set_num_threads(threads_before);
}
