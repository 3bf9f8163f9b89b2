#include "dist/sync_check.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "data/file_io.h"
#include "engine/rng.h"

namespace switchlora {

uint64_t hash_bytes(const void* data, size_t bytes) {
  // FNV-1a over 64-bit words within 1 MiB blocks, hashed in parallel, then the
  // block digests chained in order. Each step, x -> (x ^ w) * odd, is a
  // bijection of x, so one changed word always changes the digest.
  constexpr size_t kBlock = (size_t)1 << 20;
  const int64_t blocks = (int64_t)((bytes + kBlock - 1) / kBlock);
  std::vector<uint64_t> digest(blocks);
  const unsigned char* base = (const unsigned char*)data;
#pragma omp parallel for
  for (int64_t b = 0; b < blocks; b++) {
    const unsigned char* p = base + (size_t)b * kBlock;
    const size_t len = std::min(kBlock, bytes - (size_t)b * kBlock);
    uint64_t x = 0xCBF29CE484222325ull;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      x = (x ^ w) * 0x100000001B3ull;
    }
    for (; i < len; i++) x = (x ^ p[i]) * 0x100000001B3ull;
    digest[b] = x;
  }
  uint64_t h = splitmix64(bytes);
  for (uint64_t d : digest) h = splitmix64(h ^ d);
  return h;
}

uint64_t fingerprint_file(const std::string& path) {
  // A file up to kWhole bytes is hashed whole. A larger one (a C4 shard is
  // hundreds of MB, a corpus hundreds of them) by its size and kSamples blocks
  // of kBlock bytes spread evenly from its first byte to its last, so a start
  // reads a few MB per shard, not the corpus: a different tokenizer, corpus
  // or cut changes every block; a lone flipped byte between samples does not.
  constexpr size_t kWhole = (size_t)16 << 20, kBlock = (size_t)64 << 10;
  constexpr int kSamples = 32;
  const MappedFile bytes(path);
  if (bytes.size() <= kWhole) return hash_bytes(bytes.data(), bytes.size());
  bytes.advise_random();
  uint64_t h = splitmix64(bytes.size());
  for (int i = 0; i < kSamples; i++) {
    const size_t at = (bytes.size() - kBlock) * i / (kSamples - 1);  // 0 .. size - kBlock
    h = splitmix64(h ^ hash_bytes(bytes.data() + at, kBlock));
  }
  return h;
}

nlohmann::json describe_files(const std::vector<std::string>& paths) {
  nlohmann::json files = nlohmann::json::array();
  for (const std::string& path : paths) {
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fingerprint_file(path));
    files.push_back({{"file", std::filesystem::path(path).filename().string()},
                     {"bytes", std::filesystem::file_size(path)},
                     {"hash", hex}});
  }
  return files;
}

// A value as a user typed it: a float flag (widened to double in the JSON)
// prints as 0.002, not 0.0020000000949949026.
std::string show_value(const nlohmann::json& v) {
  if (!v.is_number_float()) return v.dump();
  const double d = v.get<double>();
  char buf[32];
  const auto end = (double)(float)d == d ? std::to_chars(buf, buf + sizeof buf, (float)d).ptr
                                         : std::to_chars(buf, buf + sizeof buf, d).ptr;
  return std::string(buf, end);
}

namespace {

// Every rank sends its text to every other, one broadcast per rank.
std::vector<std::string> exchange(Communicator& comm, const std::string& mine) {
  std::vector<std::string> all(comm.world());
  for (int r = 0; r < comm.world(); r++) {
    std::string text = r == comm.rank() ? mine : "";
    uint64_t len = text.size();
    comm.broadcast(&len, sizeof len, r);
    text.resize(len);
    comm.broadcast(text.data(), len, r);
    all[r] = text;
  }
  return all;
}


// "/config/hidden_size" -> "config.hidden_size"
std::string field_name(const std::string& pointer) {
  std::string name = pointer.substr(1);
  std::replace(name.begin(), name.end(), '/', '.');
  return name;
}

}  // namespace

void check_ranks_agree(Communicator& comm, const nlohmann::json& identity) {
  const std::string mine = identity.dump();
  if (comm.all_equal(hash_bytes(mine.data(), mine.size()))) return;
  // Someone differs. Every rank learns every identity, so every rank builds
  // (and throws) the same message.
  const std::vector<std::string> all = exchange(comm, mine);
  const nlohmann::json ref = nlohmann::json::parse(all[0]).flatten();
  std::string diffs;
  for (int r = 1; r < comm.world(); r++) {
    nlohmann::json other = nlohmann::json::parse(all[r]).flatten();
    nlohmann::json keys = ref;
    keys.update(other);
    for (auto& item : keys.items()) {
      const std::string& key = item.key();
      const std::string theirs = other.contains(key) ? show_value(other[key]) : "(none)";
      const std::string ours = ref.contains(key) ? show_value(ref[key]) : "(none)";
      if (theirs != ours)
        diffs += "\n  rank " + std::to_string(r) + " has " + field_name(key) + " = " + theirs + " (rank 0: " + ours + ")";
    }
  }
  throw CollectiveError("ranks disagree on the run's config, flags, data or seed:" + diffs);
}

void check_in_sync(Communicator& comm, const std::vector<NamedBuffer>& buffers, const std::string& when) {
  std::string diverged;
  for (const NamedBuffer& b : buffers)
    if (!comm.all_equal(hash_bytes(b.data, b.n * sizeof(float))))
      diverged += (diverged.empty() ? "" : ", ") + b.name;
  if (!diverged.empty())
    throw CollectiveError("ranks diverged " + when + ": their " + diverged +
                          " are no longer bitwise identical (a nondeterministic op, a hardware fault, or "
                          "ranks built from different code)");
}

}  // namespace switchlora
