#include "data/shard.h"

#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <unistd.h>

#include "data/file_io.h"
#include "engine/error.h"
#include "engine/rng.h"

using namespace switchlora;

namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / (name + "_" + std::to_string(getpid()) + ".bin")).string();
}

std::vector<int32_t> random_tokens(Rng& rng, size_t n, uint32_t below) {
  std::vector<int32_t> t(n);
  for (auto& x : t) x = (int32_t)rng.below(below);
  return t;
}

int32_t header_int(const std::string& bytes, int i) {
  int32_t v;
  std::memcpy(&v, bytes.data() + 4 * i, 4);
  return v;
}

}  // namespace

TEST_CASE("shards round-trip in uint16 and uint32 form with llm.c's header and size") {
  Rng rng{1, 31, 0};
  std::string path = temp_path("shard_rt");
  for (int trial = 0; trial < 20; trial++) {
    size_t n = rng.below(5000);
    bool narrow_values = trial % 2 == 0, force = trial % 4 == 3;
    auto tokens = random_tokens(rng, n, narrow_values ? 65536 : 200000);
    if (!narrow_values && n > 0) tokens[rng.below(n)] = 70000;  // at least one wide token
    write_shard(path, tokens, force);
    std::string bytes = read_file(path);
    bool wide = force || (!narrow_values && n > 0);
    INFO("trial ", trial, ": n=", n, " wide=", wide);
    CHECK(header_int(bytes, 0) == (wide ? 20240801 : 20240520));
    CHECK(header_int(bytes, 1) == (wide ? 7 : 1));
    CHECK(header_int(bytes, 2) == (int32_t)n);
    CHECK(bytes.size() == 1024 + n * (wide ? 4 : 2));
    CHECK(read_shard(path, 200000) == tokens);
  }
  std::filesystem::remove(path);
}

TEST_CASE("read_shard names the file and the bad field, value or position") {
  Rng rng{2, 32, 0};
  std::string path = temp_path("shard_bad");
  auto tokens = random_tokens(rng, 100, 1000);
  write_shard(path, tokens);
  std::string good = read_file(path);
  auto expect = [&](std::string bytes, int vocab, const std::string& what) {
    write_file_atomic(path, bytes);
    CHECK_THROWS_WITH_AS(read_shard(path, vocab), doctest::Contains(path.c_str()), Error);
    CHECK_THROWS_WITH_AS(read_shard(path, vocab), doctest::Contains(what.c_str()), Error);
  };
  auto with_int = [&](int i, int32_t v) {
    std::string b = good;
    std::memcpy(b.data() + 4 * i, &v, 4);
    return b;
  };
  expect(with_int(0, 12345), 1000, "header magic 12345");
  expect(with_int(1, 7), 1000, "header version 7, expected 1");
  expect(with_int(2, 101), 1000, "header's token count 101");
  expect(with_int(2, -3), 1000, "token count -3");
  expect(good.substr(0, good.size() - 2), 1000, "file is 1222 bytes");
  expect(good + "xx", 1000, "file is 1226 bytes");
  expect(good.substr(0, 500), 1000, "shorter than the 1024-byte shard header");
  size_t pos = rng.below(100);
  std::string b = good;
  uint16_t big = 1000;
  std::memcpy(b.data() + 1024 + 2 * pos, &big, 2);
  expect(b, 1000, "token 1000 at position " + std::to_string(pos));
  std::filesystem::remove(path);
  CHECK_THROWS_WITH_AS(read_shard(path, 1000), doctest::Contains(path.c_str()), Error);
}

TEST_CASE("write_shard rejects negative tokens and leaves no file behind") {
  std::string path = temp_path("shard_neg");
  std::filesystem::remove(path);
  CHECK_THROWS_WITH_AS(write_shard(path, {1, 2, -5}), doctest::Contains("token -5 at position 2"), Error);
  CHECK(!std::filesystem::exists(path));
}
