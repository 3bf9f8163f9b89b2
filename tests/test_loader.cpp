#include "data/loader.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <unistd.h>

#include "data/shard.h"
#include "engine/error.h"
#include "engine/rng.h"

using namespace switchlora;

namespace {

constexpr int kVocab = 5000;

// A data directory whose train/val shards hold distinct tokens 0, 1, 2, ...
// (mod kVocab) so every window is identified by its first token.
struct DataDir {
  std::string path;
  std::vector<int32_t> train, val;
  DataDir(Rng& rng, int train_shards, int val_shards) {
    path = (std::filesystem::temp_directory_path() / ("loader_" + std::to_string(getpid()))).string();
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
    int32_t next = 0;
    auto make = [&](const std::string& split, int shards, std::vector<int32_t>& all) {
      for (int s = 0; s < shards; s++) {
        std::vector<int32_t> t(500 + rng.below(500));
        for (auto& x : t) x = next++ % kVocab;
        all.insert(all.end(), t.begin(), t.end());
        write_shard(path + "/toy_" + split + "_00" + std::to_string(s) + ".bin", t);
      }
    };
    make("train", train_shards, train);
    make("val", val_shards, val);
  }
  ~DataDir() { std::filesystem::remove_all(path); }
};

// The sequence ids (window starts / T) of one rank's next batch.
std::vector<int64_t> next_ids(DataLoader& dl, const std::vector<int32_t>& stream, int B, int T) {
  std::vector<int32_t> in((size_t)B * T), tg(in.size());
  dl.next_batch(in.data(), tg.data());
  std::vector<int64_t> ids;
  for (int b = 0; b < B; b++) {
    int64_t s = -1;
    for (int64_t k = 0; (k + 1) * T < (int64_t)stream.size(); k++)
      if (std::equal(in.begin() + b * T, in.begin() + (b + 1) * T, stream.begin() + k * T)) s = k;
    REQUIRE(s >= 0);
    ids.push_back(s);
  }
  return ids;
}

}  // namespace

TEST_CASE("targets are the inputs shifted by one within each window of the stream") {
  Rng rng{1, 51, 0};
  DataDir d(rng, 3, 1);
  int B = 1 + (int)rng.below(4), T = 8 + (int)rng.below(24);
  DataLoader dl(d.path, "train", B, T, 0, 1, 42, kVocab);
  CHECK(dl.files().size() == 3);
  CHECK(dl.num_sequences() == ((int64_t)d.train.size() - 1) / T);
  std::vector<int32_t> in((size_t)B * T), tg(in.size());
  for (int step = 0; step < 50; step++) {
    dl.next_batch(in.data(), tg.data());
    for (int b = 0; b < B; b++) {
      auto start = std::search(d.train.begin(), d.train.end(), in.begin() + b * T, in.begin() + (b + 1) * T);
      REQUIRE(start != d.train.end());
      int64_t off = start - d.train.begin();
      INFO("step ", step, " row ", b, " offset ", off, " T ", T);
      REQUIRE(off % T == 0);
      REQUIRE(std::equal(tg.begin() + b * T, tg.begin() + (b + 1) * T, d.train.begin() + off + 1));
    }
  }
}

TEST_CASE("same seed gives the same batches, another seed another order") {
  Rng rng{2, 52, 0};
  DataDir d(rng, 2, 1);
  int B = 2, T = 16;
  DataLoader a(d.path, "train", B, T, 0, 1, 7, kVocab), b(d.path, "train", B, T, 0, 1, 7, kVocab),
      c(d.path, "train", B, T, 0, 1, 8, kVocab);
  std::vector<int64_t> sa, sb, sc;
  for (int i = 0; i < 20; i++) {
    for (auto x : next_ids(a, d.train, B, T)) sa.push_back(x);
    for (auto x : next_ids(b, d.train, B, T)) sb.push_back(x);
    for (auto x : next_ids(c, d.train, B, T)) sc.push_back(x);
  }
  CHECK(sa == sb);
  CHECK(sa != sc);
}

TEST_CASE("ranks take disjoint sequences and an epoch covers each sequence at most once") {
  Rng rng{3, 53, 0};
  DataDir d(rng, 2, 1);
  int B = 2 + (int)rng.below(3), T = 12, world = 2 + (int)rng.below(3);
  std::vector<DataLoader> ranks;
  for (int r = 0; r < world; r++) ranks.emplace_back(d.path, "train", B, T, r, world, 99, kVocab);
  int64_t per_epoch = ranks[0].batches_per_epoch();
  for (int epoch = 0; epoch < 2; epoch++) {
    std::set<int64_t> seen;
    for (int64_t i = 0; i < per_epoch; i++)
      for (int r = 0; r < world; r++)
        for (int64_t s : next_ids(ranks[r], d.train, B, T)) {
          INFO("epoch ", epoch, " batch ", i, " rank ", r, " sequence ", s);
          REQUIRE(seen.insert(s).second);
        }
    CHECK((int64_t)seen.size() == per_epoch * B * world);
  }
}

TEST_CASE("two ranks with batch b see exactly what one rank with batch 2b sees") {
  Rng rng{4, 54, 0};
  DataDir d(rng, 3, 1);
  int b = 1 + (int)rng.below(4), T = 10;
  DataLoader one(d.path, "train", 2 * b, T, 0, 1, 5, kVocab);
  DataLoader r0(d.path, "train", b, T, 0, 2, 5, kVocab), r1(d.path, "train", b, T, 1, 2, 5, kVocab);
  for (int i = 0; i < 3 * one.batches_per_epoch(); i++) {  // crosses epoch boundaries
    std::vector<int64_t> whole = next_ids(one, d.train, 2 * b, T), halves = next_ids(r0, d.train, b, T);
    for (auto s : next_ids(r1, d.train, b, T)) halves.push_back(s);
    INFO("global batch ", i);
    REQUIRE(whole == halves);
  }
}

TEST_CASE("a loader resumed at a saved position continues exactly") {
  Rng rng{5, 55, 0};
  DataDir d(rng, 2, 1);
  int B = 3, T = 9;
  DataLoader run(d.path, "train", B, T, 1, 2, 11, kVocab);
  int64_t stop = 1 + (int64_t)rng.below(2 * run.batches_per_epoch());
  for (int64_t i = 0; i < stop; i++) next_ids(run, d.train, B, T);
  DataLoader resumed(d.path, "train", B, T, 1, 2, 11, kVocab);
  resumed.set_position(run.position());
  CHECK(resumed.position() == stop);
  for (int i = 0; i < 30; i++) {
    INFO("stopped at ", stop, ", batch ", i, " after");
    REQUIRE(next_ids(run, d.train, B, T) == next_ids(resumed, d.train, B, T));
  }
}

TEST_CASE("val split runs in file order and reset starts it over") {
  Rng rng{6, 56, 0};
  DataDir d(rng, 1, 2);
  int B = 2, T = 20;
  DataLoader val(d.path, "val", B, T, 0, 1, 3, kVocab);
  std::vector<int64_t> first;
  for (int64_t i = 0; i < val.batches_per_epoch(); i++)
    for (auto s : next_ids(val, d.val, B, T)) first.push_back(s);
  for (size_t k = 0; k < first.size(); k++) REQUIRE(first[k] == (int64_t)k);
  val.reset();
  CHECK(next_ids(val, d.val, B, T) == std::vector<int64_t>{0, 1});
}

TEST_CASE("loader errors name the directory, split and sizes") {
  Rng rng{7, 57, 0};
  DataDir d(rng, 1, 1);
  CHECK_THROWS_WITH_AS(DataLoader(d.path, "test", 1, 8, 0, 1, 0, kVocab), doctest::Contains("\"test\""), Error);
  CHECK_THROWS_WITH_AS(DataLoader(d.path + "/nope", "train", 1, 8, 0, 1, 0, kVocab),
                       doctest::Contains("nope"), Error);
  std::filesystem::remove(d.path + "/toy_val_000.bin");
  CHECK_THROWS_WITH_AS(DataLoader(d.path, "val", 1, 8, 0, 1, 0, kVocab), doctest::Contains("no val shards"), Error);
  CHECK_THROWS_WITH_AS(DataLoader(d.path, "train", 64, 64, 0, 2, 0, kVocab),
                       doctest::Contains("fewer than one global batch of B*world=128"), Error);
  CHECK_THROWS_WITH_AS(DataLoader(d.path, "train", 1, 8, 2, 2, 0, kVocab), doctest::Contains("rank 2"), Error);
  CHECK_THROWS_WITH_AS(DataLoader(d.path, "train", 1, 8, 0, 1, 0, 100), doctest::Contains("toy_train_000.bin"), Error);
}
