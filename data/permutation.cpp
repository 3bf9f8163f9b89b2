#include "data/permutation.h"

#include <utility>

#include "engine/error.h"
#include "engine/rng.h"

namespace switchlora {

KeyedPermutation::KeyedPermutation(uint64_t n, uint64_t key) : n_(n), key_(key) {
  SL_CHECK(n <= (1ull << 62), "permutation size " + std::to_string(n) + " is above 2^62");
  while ((1ull << bits_) < n) bits_++;
}

uint64_t KeyedPermutation::feistel(uint64_t x) const {
  int left_bits = bits_ / 2, right_bits = bits_ - left_bits;
  uint64_t left = x >> right_bits, right = x & ((1ull << right_bits) - 1);
  for (int k = 0; k < kRounds; k++) {
    const uint64_t next = (left ^ hash64(key_, (uint64_t)k, right)) & ((1ull << left_bits) - 1);
    left = right;
    right = next;
    std::swap(left_bits, right_bits);
  }
  return left << right_bits | right;
}

uint64_t KeyedPermutation::operator()(uint64_t i) const {
  SL_CHECK(i < n_, "permutation index " + std::to_string(i) + " is not below " + std::to_string(n_));
  uint64_t x = feistel(i);
  while (x >= n_) x = feistel(x);  // cycle walking: ends, since i's cycle holds i < n
  return x;
}

}  // namespace switchlora
