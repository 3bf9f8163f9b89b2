// A pseudo-random permutation of [0, n) in O(1) memory: p(i) is computed on
// demand, so a shuffled epoch over a billion sequences costs nothing up
// front and nothing to keep.
//
// Construction (Black & Rogaway's "cycle walking" over a Feistel network):
// the domain of 2^b >= n values (b bits, the least) is split into a left
// part of a = b/2 high bits and a right part of c = b - a low bits; each of
// kRounds rounds maps (L, R) -> (R, (L ^ F_k(R)) mod 2^width(L)) with
// F_k(x) = hash64(key, k, x), which swaps the two widths (an even number of
// rounds brings them back). A round is invertible whatever F is, so the
// network is a bijection of [0, 2^b); walking p(i), p(p(i)), ... until the
// value falls below n makes it a bijection of [0, n) (2^b < 2n, so the walk
// takes under 2 steps on average). With a pseudo-random F, four rounds
// already give a pseudo-random permutation (Luby & Rackoff); we use 6.
#pragma once
#include <cstdint>

namespace switchlora {

class KeyedPermutation {
 public:
  KeyedPermutation(uint64_t n, uint64_t key);
  uint64_t operator()(uint64_t i) const;  // i < n
  uint64_t size() const { return n_; }

 private:
  static constexpr int kRounds = 6;  // even: the parts end at their starting widths
  uint64_t feistel(uint64_t x) const;

  uint64_t n_, key_;
  int bits_ = 0;  // b
};

}  // namespace switchlora
