#include "data/permutation.h"

#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "engine/rng.h"

using namespace switchlora;

namespace {

// p is a bijection of [0, n): every value is hit exactly once.
bool is_bijection(const KeyedPermutation& p) {
  std::vector<bool> hit(p.size(), false);
  for (uint64_t i = 0; i < p.size(); i++) {
    uint64_t v = p(i);
    if (v >= p.size() || hit[v]) return false;
    hit[v] = true;
  }
  return true;
}

}  // namespace

TEST_CASE("a keyed permutation is a bijection of [0, n) for every n, small, odd and just past a power of 4") {
  Rng rng{13, 91, 0};
  for (uint64_t n = 1; n <= 300; n++) {
    INFO("n = ", n);
    REQUIRE(is_bijection(KeyedPermutation(n, rng.next_u64())));
  }
  for (uint64_t n : {1023ull, 1024ull, 1025ull, 4097ull, 65537ull, 1000003ull, (1ull << 20) + 1}) {
    INFO("n = ", n);
    REQUIRE(is_bijection(KeyedPermutation(n, rng.next_u64())));
  }
}

TEST_CASE("a keyed permutation depends on its key only, and looks uniformly random") {
  const uint64_t n = 1000;
  KeyedPermutation a(n, 7), b(n, 7), c(n, 8);
  int same_ab = 0, same_ac = 0, fixed = 0;
  for (uint64_t i = 0; i < n; i++) {
    same_ab += a(i) == b(i);
    same_ac += a(i) == c(i);
    fixed += a(i) == i;
  }
  CHECK(same_ab == (int)n);
  CHECK(same_ac < 10);  // two random permutations agree in ~1 place
  CHECK(fixed < 10);    // and a random permutation fixes ~1 point
  // Where 0 goes, over many keys: each of 8 places about 1/8 of the time.
  // 4000 draws give 500 +- 21 per place (binomial sd): 6 sd of slack.
  int count[8] = {};
  for (uint64_t key = 0; key < 4000; key++) count[KeyedPermutation(8, key)(0)]++;
  for (int j = 0; j < 8; j++) {
    INFO("place ", j, ": ", count[j], " of 4000");
    CHECK(std::abs(count[j] - 500) < 130);
  }
}
