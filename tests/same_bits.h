// Bitwise equality of two float vectors (the determinism tests' measure):
// the same size and the same bytes. Empty vectors are equal (and never hand
// memcmp a null pointer).
#pragma once
#include <cstring>
#include <vector>

namespace switchlora::test {

inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

}  // namespace switchlora::test
