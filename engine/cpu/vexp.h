// exp(x) for float that the compiler can vectorise. glibc's expf is scalar
// unless the whole build uses -ffast-math, and the softmax of a 32k
// vocabulary spends most of its time there. This is Cephes' expf
// (Moshier 1984), good to ~1 ulp:
//   x = n ln2 + r,  |r| <= ln2 / 2,   exp(x) = 2^n exp(r)
// with n = round(x / ln2), ln2 split in two constants so that n ln2 is exact
// in float, and exp(r) a polynomial.
//
// Written without branches or float selects: under the default
// -ftrapping-math GCC will not if-convert a branch that guards a float
// operation, so any `cond ? a : b` on floats here stops the loop around it
// from vectorising. n is rounded by the 1.5 * 2^23 shift trick and clamped as
// an integer; the out-of-range inputs are patched with integer bit masks.
#pragma once
#include <bit>
#include <cstdint>

namespace switchlora::cpu {

inline float vexp(float x) {
  // Adding 1.5 * 2^23 leaves round(x / ln2) in the low mantissa bits of t
  // (valid for |x| < 2^22 ln2; larger inputs are patched below).
  constexpr float kShift = 12582912.0f;
  float t = x * 1.44269504088896341f + kShift;
  float n = t - kShift;
  float r = x - n * 0.693359375f;  // exact: 0.693359375 has 9 significant bits
  r = r - n * -2.12194440e-4f;     // the rest of ln2
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // n as an integer (unsigned arithmetic wraps instead of overflowing on a
  // garbage t), clamped to [-151, 129]: beyond that p * 2^n, p in
  // [0.7, 1.42], rounds to 0 or overflows to inf anyway.
  int32_t ni = (int32_t)(std::bit_cast<uint32_t>(t) - std::bit_cast<uint32_t>(kShift));
  ni = ni < -151 ? -151 : ni;
  ni = ni > 129 ? 129 : ni;
  // 2^n in two halves, both normal floats, so denormal results are right too.
  int32_t n1 = ni >> 1, n2 = ni - n1;
  float y = p * std::bit_cast<float>((n1 + 127) << 23) * std::bit_cast<float>((n2 + 127) << 23);
  // All-ones masks: below -104 the result is 0 (exp(-104) rounds to 0), above
  // log(FLT_MAX) it is +inf, and a NaN comes back as itself.
  uint32_t yb = std::bit_cast<uint32_t>(y);
  uint32_t in_range = -(uint32_t)(x >= -104.0f);
  uint32_t overflow = -(uint32_t)(x > 88.7228394f);
  uint32_t nan = -(uint32_t)(x != x);
  yb = (yb & in_range & ~overflow) | (0x7f800000u & overflow);
  yb = (yb & ~nan) | (std::bit_cast<uint32_t>(x) & nan);
  return std::bit_cast<float>(yb);
}

}  // namespace switchlora::cpu
