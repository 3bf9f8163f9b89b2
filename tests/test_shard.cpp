#include "data/shard.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <unistd.h>

#include "data/file_io.h"
#include "data/mapped_shard.h"
#include "data/shard_writer.h"
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

TEST_CASE("the shard writer streams tokens into numbered shards, byte for byte what write_shard writes") {
  Rng rng{3, 33, 0};
  const std::string dir = temp_path("shard_writer");
  for (int trial = 0; trial < 8; trial++) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const bool wide = trial % 2 == 1;
    const int64_t per_shard = 1 + (int64_t)rng.below(3000);
    auto tokens = random_tokens(rng, rng.below(20000), wide ? 1u << 20 : 65536);
    std::vector<std::string> names;
    {
      ShardWriter w(dir, "toy_train", per_shard, wide, 4);
      for (size_t at = 0; at < tokens.size();) {  // in pieces of random size, some empty
        size_t take = std::min<size_t>(tokens.size() - at, rng.below(1500));
        w.add(tokens.data() + at, take);
        at += take;
      }
      CHECK(w.tokens() == (int64_t)tokens.size());
      names = w.finish();
    }
    INFO("trial ", trial, ": ", tokens.size(), " tokens, ", per_shard, " a shard");
    REQUIRE(names.size() == (tokens.size() + per_shard - 1) / per_shard);
    for (size_t s = 0; s < names.size(); s++) {
      char want[64];
      std::snprintf(want, sizeof want, "toy_train_%04zu.bin", s);
      CHECK(names[s] == want);
      const size_t begin = s * per_shard, end = std::min(tokens.size(), begin + per_shard);
      const std::vector<int32_t> slice(tokens.begin() + begin, tokens.begin() + end);
      write_shard(dir + "/reference.bin", slice, wide);
      CHECK(read_file(dir + "/" + names[s]) == read_file(dir + "/reference.bin"));
    }
    std::filesystem::remove(dir + "/reference.bin");
    CHECK((size_t)std::distance(std::filesystem::directory_iterator(dir), {}) == names.size());  // no temporaries
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("the shard writer refuses ids its width cannot hold and shard numbers its width cannot name") {
  const std::string dir = temp_path("shard_writer_bad");
  std::filesystem::create_directories(dir);
  {
    ShardWriter w(dir, "x", 100, false);
    const int32_t big[] = {1, 2, 70000};
    CHECK_THROWS_WITH_AS(w.add(big, 3), doctest::Contains("x_000.bin: token 70000 does not fit a uint16 shard"), Error);
  }
  CHECK(std::filesystem::is_empty(dir));  // the unfinished shard's temporary is gone
  {
    ShardWriter w(dir, "y", 1, false, 1);
    std::vector<int32_t> t(10, 5);
    w.add(t.data(), t.size());
    const int32_t one = 1;
    CHECK_THROWS_WITH_AS(w.add(&one, 1), doctest::Contains("do not fit 1-digit numbers"), Error);
  }
  CHECK_THROWS_WITH_AS(ShardWriter(dir, "z", 0, false), doctest::Contains("shard size 0 tokens"), Error);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a mapped shard copies any range and names the file of a truncated shard") {
  Rng rng{4, 34, 0};
  const std::string path = temp_path("shard_map");
  for (bool wide : {false, true}) {
    auto tokens = random_tokens(rng, 5000, wide ? 1u << 20 : 65536);
    write_shard(path, tokens, wide);
    MappedShard m(path);
    CHECK(m.size() == 5000);
    CHECK(m.wide() == wide);
    for (int trial = 0; trial < 20; trial++) {
      int64_t begin = (int64_t)rng.below(5000), count = (int64_t)rng.below(5000 - begin + 1);
      std::vector<int32_t> got(count);
      m.copy(begin, count, got.data(), 1 << 20);
      CHECK(std::equal(got.begin(), got.end(), tokens.begin() + begin));
    }
  }
  std::string bytes = read_file(path);
  write_file_atomic(path, bytes.substr(0, bytes.size() - 4));
  CHECK_THROWS_WITH_AS(MappedShard{path}, doctest::Contains((path + ": file is").c_str()), Error);
  CHECK_THROWS_WITH_AS(MappedShard{path}, doctest::Contains("(a truncated shard?)"), Error);
  std::filesystem::remove(path);
}
