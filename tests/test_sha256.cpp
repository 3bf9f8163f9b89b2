#include "data/sha256.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <unistd.h>

#include "data/file_io.h"
#include "engine/error.h"
#include "engine/rng.h"

using namespace switchlora;

TEST_CASE("sha256 matches the FIPS 180-4 example digests") {
  // FIPS 180-4 / NIST CSRC examples: the standard's published values.
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_CASE("sha256 equals coreutils sha256sum on random inputs of every padding length") {
  Rng rng{4, 41, 0};
  std::string path = (std::filesystem::temp_directory_path() / ("sha_" + std::to_string(getpid()))).string();
  for (int trial = 0; trial < 40; trial++) {
    size_t n = trial < 20 ? 50 + trial : rng.below(100000);  // 50..69 crosses the 55/56-byte padding edge
    std::string data(n, '\0');
    for (char& c : data) c = (char)rng.below(256);
    write_file_atomic(path, data);
    FILE* p = popen(("sha256sum " + path).c_str(), "r");
    REQUIRE(p);
    char hex[65] = {};
    REQUIRE(fread(hex, 1, 64, p) == 64);
    pclose(p);
    INFO("trial ", trial, ", ", n, " bytes");
    CHECK(sha256_hex(data) == std::string(hex));
  }
  std::filesystem::remove(path);
}

TEST_CASE("sha256 fed in random pieces, or a file read in pieces, equals the one-shot digest") {
  Rng rng{5, 42, 0};
  std::string path = (std::filesystem::temp_directory_path() / ("sha_inc_" + std::to_string(getpid()))).string();
  for (int trial = 0; trial < 30; trial++) {
    std::string data(trial < 10 ? 60 + trial : rng.below(3 << 20), '\0');  // up to 3 MiB: several file reads
    for (char& c : data) c = (char)rng.below(256);
    Sha256 h;
    for (size_t at = 0; at < data.size();) {
      size_t take = std::min<size_t>(data.size() - at, rng.below(200));
      h.update(data.data() + at, take);
      at += take;
    }
    write_file_atomic(path, data);
    INFO("trial ", trial, ", ", data.size(), " bytes");
    const std::string want = sha256_hex(data);
    CHECK(h.hex() == want);
    CHECK(sha256_file_hex(path) == want);
  }
  std::filesystem::remove(path);
  CHECK_THROWS_WITH_AS(sha256_file_hex(path), doctest::Contains(path.c_str()), Error);
}
