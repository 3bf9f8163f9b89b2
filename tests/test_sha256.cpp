#include "data/sha256.h"

#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <unistd.h>

#include "data/file_io.h"
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
