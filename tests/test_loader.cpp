#include "data/loader.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <set>
#include <unistd.h>

#include "data/file_io.h"
#include "data/permutation.h"
#include "data/shard.h"
#include "data/shard_writer.h"
#include "data/tokenizer.h"
#include "engine/error.h"
#include "engine/rng.h"
#include "tests/cli.h"

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

TEST_CASE("a truncated shard is an error naming the file when the loader opens it") {
  Rng rng{8, 58, 0};
  DataDir d(rng, 2, 1);
  const std::string shard = d.path + "/toy_train_001.bin";
  std::string bytes = read_file(shard);
  write_file_atomic(shard, bytes.substr(0, bytes.size() - 100));
  CHECK_THROWS_WITH_AS(DataLoader(d.path, "train", 1, 8, 0, 1, 0, kVocab),
                       doctest::Contains((shard + ": file is").c_str()), Error);
}

TEST_CASE("a token outside the vocabulary past the checked head of a shard fails the batch that reads it") {
  const std::string dir = (std::filesystem::temp_directory_path() / ("loader_oov_" + std::to_string(getpid()))).string();
  std::filesystem::create_directories(dir);
  const int64_t n = DataLoader::kCheckedAtOpen + 5000, bad = DataLoader::kCheckedAtOpen + 1234;
  std::vector<int32_t> t(n, 7);
  t[bad] = kVocab;
  write_shard(dir + "/toy_val_000.bin", t);
  write_shard(dir + "/toy_train_000.bin", std::vector<int32_t>(100, 1));
  DataLoader val(dir, "val", 1, 16, 0, 1, 0, kVocab);  // opens: the head is fine
  std::vector<int32_t> in(16), tg(16);
  for (int64_t s = 0; (s + 1) * 16 < bad; s++) val.next_batch(in.data(), tg.data());
  CHECK_THROWS_WITH_AS(val.next_batch(in.data(), tg.data()),
                       doctest::Contains(("toy_val_000.bin: token 5000 at position " + std::to_string(bad)).c_str()),
                       Error);
  std::filesystem::remove_all(dir);
}

TEST_CASE("the keyed order (above the materialised order's limit): an epoch covers each sequence once, ranks "
          "split it as before, a position replays exactly, and epochs and seeds differ") {
  // Token i is i, so with T = 1 an input token is its sequence id. The limit
  // is lowered to 1000 so that this runs on 30k sequences, not a million.
  const std::string dir = (std::filesystem::temp_directory_path() / ("loader_keyed_" + std::to_string(getpid()))).string();
  std::filesystem::create_directories(dir);
  const int64_t n_seq = 30000 + 17, vocab = n_seq + 1, limit = 1000;
  std::vector<int32_t> t(n_seq + 1);
  for (int64_t i = 0; i <= n_seq; i++) t[i] = (int32_t)i;
  const size_t cut = (size_t)n_seq / 3;  // two shards: windows cross the boundary
  write_shard(dir + "/big_train_000.bin", std::vector<int32_t>(t.begin(), t.begin() + cut));
  write_shard(dir + "/big_train_001.bin", std::vector<int32_t>(t.begin() + cut, t.end()));
  write_shard(dir + "/big_val_000.bin", {1, 2, 3});
  const int B = 256;
  auto loader = [&](int b, int rank, int world, uint64_t seed) {
    return DataLoader(dir, "train", b, 1, rank, world, seed, (int)vocab, limit);
  };
  DataLoader one = loader(B, 0, 1, 3), r0 = loader(B / 2, 0, 2, 3), r1 = loader(B / 2, 1, 2, 3),
             other_seed = loader(B, 0, 1, 4);
  REQUIRE(one.num_sequences() == n_seq);
  std::vector<int32_t> in(B), tg(B), again(B), h0(B / 2), h1(B / 2), in_other(B), scratch(B);  // scratch: unchecked targets
  std::vector<bool> seen(n_seq, false);
  std::vector<int32_t> first_epoch;
  int64_t same_as_other_seed = 0, same_as_last_epoch = 0;
  for (int64_t i = 0; i < 2 * one.batches_per_epoch(); i++) {
    one.next_batch(in.data(), tg.data());
    one.set_position(one.position() - 1);
    one.next_batch(again.data(), scratch.data());
    r0.next_batch(h0.data(), scratch.data());
    r1.next_batch(h1.data(), scratch.data());
    other_seed.next_batch(in_other.data(), scratch.data());
    INFO("batch ", i);
    REQUIRE(again == in);
    REQUIRE(std::equal(h0.begin(), h0.end(), in.begin()));
    REQUIRE(std::equal(h1.begin(), h1.end(), in.begin() + B / 2));
    for (int b = 0; b < B; b++) {
      REQUIRE(tg[b] == in[b] + 1);
      same_as_other_seed += in[b] == in_other[b];
      if (i < one.batches_per_epoch()) {
        REQUIRE(!seen[in[b]]);
        seen[in[b]] = true;
        first_epoch.push_back(in[b]);
      } else {
        same_as_last_epoch += in[b] == first_epoch[(i - one.batches_per_epoch()) * B + b];
      }
    }
  }
  CHECK(std::count(seen.begin(), seen.end(), true) == one.batches_per_epoch() * B);
  // Two independent random orders agree in about one place (Poisson(1)): < 10 fails once in 10^6.
  CHECK(same_as_other_seed < 10);
  CHECK(same_as_last_epoch < 10);
  std::filesystem::remove_all(dir);
}

TEST_CASE("the train order is the Fisher-Yates vector up to kMaterialisedOrderMax sequences, the keyed "
          "permutation above") {
  const std::string dir = (std::filesystem::temp_directory_path() / ("loader_limit_" + std::to_string(getpid()))).string();
  std::filesystem::create_directories(dir);
  write_shard(dir + "/x_val_000.bin", {1, 2, 3});
  for (int64_t n_seq : {DataLoader::kMaterialisedOrderMax, DataLoader::kMaterialisedOrderMax + 1}) {
    std::vector<int32_t> t(n_seq + 1);
    for (int64_t i = 0; i <= n_seq; i++) t[i] = (int32_t)i;
    write_shard(dir + "/x_train_000.bin", t);
    const int B = 64;
    const uint64_t seed = 5;
    DataLoader dl(dir, "train", B, 1, 0, 1, seed, (int)n_seq + 1);
    std::vector<int32_t> in(B), tg(B);
    dl.next_batch(in.data(), tg.data());
    // The two orders of epoch 0, computed here: the loader's before it was
    // memory-mapped (Fisher-Yates, kept bit for bit) and the keyed one.
    std::vector<int64_t> fisher_yates(n_seq);
    std::iota(fisher_yates.begin(), fisher_yates.end(), 0);
    Rng rng{hash64(seed, kStreamData, 0), kStreamData, 0};
    for (int64_t k = n_seq - 1; k > 0; k--) std::swap(fisher_yates[k], fisher_yates[rng.below(k + 1)]);
    const KeyedPermutation keyed((uint64_t)n_seq, hash64(seed, kStreamData, 0));
    int as_keyed = 0, as_fisher_yates = 0;
    for (int b = 0; b < B; b++) {
      as_keyed += (uint64_t)in[b] == keyed((uint64_t)b);
      as_fisher_yates += in[b] == fisher_yates[b];
    }
    INFO(n_seq, " sequences");
    const bool big = n_seq > DataLoader::kMaterialisedOrderMax;
    CHECK(as_keyed == (big ? B : 0));
    CHECK(as_fisher_yates == (big ? 0 : B));
  }
  std::filesystem::remove_all(dir);
}

namespace {

// Runs args[0] with its arguments, output to `log`; returns its peak resident
// set size in MB (ru_maxrss from wait4) and its exit status. Through a small
// Python parent: exec records the hiwater mark of the memory image it
// replaces, so a child forked straight from this test process would report
// at least this process's peak; forked from Python it reports at least
// Python's (~10 MB), below what is measured here.
std::pair<double, int> peak_rss_mb(const std::vector<std::string>& args, const std::string& log) {
  std::string cmd = "/usr/bin/python3 -c 'import os, sys\n"
                    "pid = os.fork()\n"
                    "if pid == 0:\n"
                    "    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)\n"
                    "    os.dup2(fd, 1); os.dup2(fd, 2); os.execv(sys.argv[2], sys.argv[2:])\n"
                    "_, status, ru = os.wait4(pid, 0)\n"
                    "print(ru.ru_maxrss, os.waitstatus_to_exitcode(status))' " + log;
  for (auto& a : args) cmd += " '" + a + "'";
  test::RunResult r = test::run(cmd);
  REQUIRE_MESSAGE(r.rc == 0, cmd << "\n" << r.output);
  double kb = 0;
  int rc = -1;
  REQUIRE(std::sscanf(r.output.c_str(), "%lf %d", &kb, &rc) == 2);
  return {kb / 1024.0, rc};
}

}  // namespace

TEST_CASE("a training run's peak memory grows neither with its corpus (25M tokens vs 2.5M) nor with the "
          "windows it reads") {
#ifdef __SANITIZE_ADDRESS__
  MESSAGE("skipped under AddressSanitizer: its shadow memory and quarantine are not the engine's RSS");
  return;
#endif
  const std::string base = (std::filesystem::temp_directory_path() / ("loader_rss_" + std::to_string(getpid()))).string();
  std::filesystem::remove_all(base);
  // The instrument first: a child that touches 50 MB more must read 50 MB more.
  auto [py_small, rc0] = peak_rss_mb({"/usr/bin/python3", "-c", "b = bytearray(20_000_000)"}, base + ".log");
  auto [py_big, rc1] = peak_rss_mb({"/usr/bin/python3", "-c", "b = bytearray(70_000_000)"}, base + ".log");
  REQUIRE(rc0 == 0);
  REQUIRE(rc1 == 0);
  MESSAGE("instrument: python3 with a 20 MB bytearray ", py_small, " MB, with 70 MB ", py_big, " MB");
  CHECK(py_big - py_small == doctest::Approx(50e6 / (1 << 20)).epsilon(0.05));

  // Two data directories that differ only in the size of their train split:
  // 2.5M and 25M random tokens (5 and 50 MB of uint16 shards). Held in RAM as
  // the loader once held them (int32), 25M tokens would be 100 MB; and the
  // 300 steps read 1200 windows, so a loader that left the pages it read
  // mapped would show them too (measured: +40 MB on the big corpus).
  Rng rng{9, 59, 0};
  std::string text;  // random words: enough distinct pairs for 300 - 257 merges
  for (int i = 0; i < 20000; i++) text += i % 6 ? (char)('a' + rng.below(26)) : ' ';
  const Tokenizer tok = Tokenizer::train(text, 300);
  // About 200 MB of any run's peak is the binary's shared libraries (most of
  // it libcublasLt), and the file-backed part of that depends on what the
  // page cache holds: measured, a run after a cold cache peaks 16 MB lower
  // than the next. So the libraries are paged in first (--help), and each
  // corpus is measured twice, its lower peak kept.
  auto [warm, rc_warm] = peak_rss_mb({test::bin(), "--help"}, base + ".log");
  REQUIRE(rc_warm == 0);
  MESSAGE("switchlora --help alone peaks at ", warm, " MB");
  double rss[2];
  for (int big = 0; big < 2; big++) {
    const std::string dir = base + (big ? "/big" : "/small");
    std::filesystem::create_directories(dir);
    tok.save(dir);
    ShardWriter train(dir, "toy_train", 10'000'000, false);
    std::vector<int32_t> chunk(1'000'000);
    const size_t tokens = big ? 25'000'000 : 2'500'000;
    for (size_t done = 0; done < tokens; done += chunk.size()) {
      for (auto& t : chunk) t = (int32_t)rng.below(300);
      train.add(chunk.data(), std::min(chunk.size(), tokens - done));
    }
    train.finish();
    write_shard(dir + "/toy_val_000.bin", std::vector<int32_t>(chunk.begin(), chunk.begin() + 10'000));
    REQUIRE(std::filesystem::file_size(dir + "/toy_train_000.bin") > 4'000'000);
    rss[big] = 1e30;
    for (int attempt = 0; attempt < 2; attempt++) {
      std::filesystem::remove_all(dir + "/run");
      auto [mb, rc] = peak_rss_mb({test::bin(), "train", "--model_config", "configs/llama_tiny.json", "--data", dir,
                                   "--batch_size", "4", "--max_length", "16", "--num_training_steps", "300",
                                   "--eval_every", "100", "--max_eval_batches", "2", "--save_dir", dir + "/run"},
                                  dir + "/train.log");
      INFO(read_file(dir + "/train.log"));
      REQUIRE(rc == 0);
      rss[big] = std::min(rss[big], mb);
    }
  }
  MESSAGE("peak RSS: ", rss[0], " MB with 2.5M tokens, ", rss[1], " MB with 25M");
  // A few MB of slack: the window being read, and the small run's 1.25 MB
  // materialised order (156k sequences) that the big run's keyed
  // permutation (1.56M sequences) does not hold.
  CHECK(std::abs(rss[1] - rss[0]) < 4);
  std::filesystem::remove_all(base);
  std::filesystem::remove(base + ".log");
}
