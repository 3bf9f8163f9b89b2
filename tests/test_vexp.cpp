// The vectorisable exp against the correctly rounded double exp.
#include <cmath>
#include <limits>
#include <vector>

#include "engine/cpu/vexp.h"
#include "engine/rng.h"
#include <doctest/doctest.h>

using namespace switchlora;

TEST_CASE("vexp is within 2 ulp of exp over the whole float range") {
  // A dense sweep plus random points, from where exp underflows to where it
  // overflows. Cephes' polynomial is ~1 ulp; the ulp of the normal results
  // is measured in float (2^-23 relative at the value's own exponent).
  std::vector<float> xs;
  for (float x = -87.0f; x <= 88.72f; x += 0.00731f) xs.push_back(x);
  Rng rng{1, 0, 0};
  for (int i = 0; i < 100000; i++) xs.push_back(-87.0f + 175.7f * rng.uniform());
  double worst = 0.0;
  float worst_x = 0.0f;
  for (float x : xs) {
    double want = std::exp((double)x);
    int e;
    std::frexp(want, &e);
    double ulp = std::ldexp(1.0, e - 24);
    double err = std::fabs((double)cpu::vexp(x) - want) / ulp;
    if (err > worst) worst = err, worst_x = x;
  }
  INFO("worst error " << worst << " ulp at x = " << worst_x);
  CHECK(worst <= 2.0);
}

TEST_CASE("vexp handles the edges: 0, denormals, underflow, overflow, infinities and NaN") {
  CHECK(cpu::vexp(0.0f) == 1.0f);
  // Denormal results: the absolute error stays within one denormal step
  // (2^-149) plus the polynomial's relative error.
  for (float x : {-88.0f, -95.0f, -100.0f, -103.0f}) {
    double want = std::exp((double)x);
    INFO("x = " << x << " got " << cpu::vexp(x) << " want " << want);
    CHECK(std::fabs(cpu::vexp(x) - want) <= std::ldexp(1.0, -149) + 1e-6 * want);
  }
  CHECK(cpu::vexp(-110.0f) == 0.0f);
  CHECK(cpu::vexp(-1e7f) == 0.0f);  // beyond the rounding trick's range
  CHECK(std::isinf(cpu::vexp(1e7f)));
  CHECK(cpu::vexp(-std::numeric_limits<float>::infinity()) == 0.0f);
  CHECK(cpu::vexp(88.72f) == doctest::Approx(std::exp((double)88.72f)).epsilon(1e-6));
  CHECK(std::isinf(cpu::vexp(88.73f)));
  CHECK(std::isinf(cpu::vexp(1000.0f)));
  CHECK(std::isinf(cpu::vexp(std::numeric_limits<float>::infinity())));
  CHECK(std::isnan(cpu::vexp(std::numeric_limits<float>::quiet_NaN())));
}
