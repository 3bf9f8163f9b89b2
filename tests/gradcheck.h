// Shared helpers for the op tests: seeded random arrays, central finite
// differences of a double-precision reference loss, and a comparison that
// fails with the element that broke it.
//
// The gradient checks follow one recipe. Each test writes the op's forward a
// second time, naively and in double, and takes the loss L = sum(out * R) with
// a random R (so the upstream gradient dout is exactly R). The float op's
// analytic gradient is compared with central differences of that double loss.
// In double, with h = 1e-5 and inputs of order 1, the difference quotient is
// good to ~1e-9 (truncation h^2 f'''/6 ~ 1e-11, rounding 1e-16 |L| / h ~ 1e-10),
// so all of the measured error is the float op's own rounding.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "engine/rng.h"

namespace switchlora::test {

// n draws of scale * N(0, 1).
inline std::vector<float> randn(size_t n, Rng& rng, float scale = 1.0f) {
  std::vector<float> x(n);
  for (float& v : x) v = scale * rng.normal();
  return x;
}

inline std::vector<double> to_double(const std::vector<float>& x) {
  return std::vector<double>(x.begin(), x.end());
}

// sum_i out[i] * R[i]: the probe loss whose gradient with respect to out is R.
inline double probe_loss(const std::vector<double>& out, const std::vector<float>& R) {
  double L = 0.0;
  for (size_t i = 0; i < out.size(); i++) L += out[i] * R[i];
  return L;
}

// Central differences of f at x, one coordinate at a time:
//   g[i] = (f(x + h e_i) - f(x - h e_i)) / 2h
inline std::vector<double> numeric_grad(
    const std::function<double(const std::vector<double>&)>& f, std::vector<double> x,
    double h = 1e-5) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); i++) {
    double xi = x[i];
    x[i] = xi + h;
    double fp = f(x);
    x[i] = xi - h;
    double fm = f(x);
    x[i] = xi;
    g[i] = (fp - fm) / (2.0 * h);
  }
  return g;
}

// Checks |got[i] - want[i]| <= tol * max_j |want[j]| for every i: float
// rounding in a sum is relative to the size of its terms, not of its result,
// so the error of a small element is measured against the tensor's scale.
// Fails with the worst element, its index and both values.
template <class Got, class Want>
inline void check_close(const std::string& what, const Got& got, const Want& want, double tol) {
  REQUIRE_MESSAGE(got.size() == want.size(), what << ": size " << got.size() << " vs "
                                                  << want.size());
  double scale = 0.0;
  for (auto w : want) scale = std::max(scale, std::fabs((double)w));
  REQUIRE_MESSAGE(scale > 0.0, what << ": the reference is all zeros, nothing is checked");
  size_t worst = 0;
  double worst_err = -1.0;
  for (size_t i = 0; i < got.size(); i++) {
    double err = std::fabs((double)got[i] - (double)want[i]);
    if (std::isnan(worst_err)) break;  // a NaN is the worst there is
    if (std::isnan(err) || err > worst_err) worst = i, worst_err = err;
  }
  INFO(what << ": worst element [" << worst << "] got " << (double)got[worst] << " want "
            << (double)want[worst] << ", error " << worst_err / scale << " of scale " << scale
            << " (tolerance " << tol << ")");
  CHECK(worst_err <= tol * scale);
}

}  // namespace switchlora::test
