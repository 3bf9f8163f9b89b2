#include "data/shard.h"

#include <algorithm>
#include <bit>
#include <climits>
#include <cstring>

#include "data/file_io.h"
#include "data/mapped_shard.h"
#include "engine/error.h"

namespace switchlora {

// llm.c writes the host's byte order, which is little-endian on every
// machine we build for; memcpy keeps the reads free of alignment issues.
static_assert(std::endian::native == std::endian::little, "shards are little-endian");

void write_shard(const std::string& path, const std::vector<int32_t>& tokens, bool uint32) {
  if (tokens.size() > (size_t)INT32_MAX)
    throw Error(path + ": " + std::to_string(tokens.size()) + " tokens do not fit one shard (max 2^31 - 1)");
  auto bad = std::find_if(tokens.begin(), tokens.end(), [](int32_t t) { return t < 0; });
  if (bad != tokens.end())
    throw Error(path + ": token " + std::to_string(*bad) + " at position " + std::to_string(bad - tokens.begin()) +
                " is negative");
  bool wide = uint32 || std::any_of(tokens.begin(), tokens.end(), [](int32_t t) { return t > 0xFFFF; });
  int32_t header[kShardHeaderInts] = {};
  header[0] = wide ? kShardMagic32 : kShardMagic16;
  header[1] = wide ? kShardVersion32 : kShardVersion16;
  header[2] = (int32_t)tokens.size();
  size_t width = wide ? 4 : 2;
  std::string bytes(sizeof header + tokens.size() * width, '\0');
  std::memcpy(bytes.data(), header, sizeof header);
  char* out = bytes.data() + sizeof header;
  for (size_t i = 0; i < tokens.size(); i++) {
    if (wide) std::memcpy(out + 4 * i, &tokens[i], 4);
    else {
      uint16_t t = (uint16_t)tokens[i];
      std::memcpy(out + 2 * i, &t, 2);
    }
  }
  write_file_atomic(path, bytes);
}

ShardLayout parse_shard_header(const std::string& path, const char* head, uint64_t file_bytes) {
  int32_t header[kShardHeaderInts];
  if (file_bytes < sizeof header)
    throw Error(path + ": " + std::to_string(file_bytes) + " bytes is shorter than the " +
                std::to_string(sizeof header) + "-byte shard header");
  std::memcpy(header, head, sizeof header);
  bool wide;
  if (header[0] == kShardMagic16) wide = false;
  else if (header[0] == kShardMagic32) wide = true;
  else
    throw Error(path + ": header magic " + std::to_string(header[0]) + " is neither " +
                std::to_string(kShardMagic16) + " (uint16 tokens) nor " + std::to_string(kShardMagic32) +
                " (uint32 tokens)");
  int32_t version = wide ? kShardVersion32 : kShardVersion16;
  if (header[1] != version)
    throw Error(path + ": header version " + std::to_string(header[1]) + ", expected " + std::to_string(version) +
                " for magic " + std::to_string(header[0]));
  if (header[2] < 0) throw Error(path + ": header token count " + std::to_string(header[2]) + " is negative");
  uint64_t width = wide ? 4 : 2, n = (uint64_t)header[2];
  uint64_t expected = sizeof header + n * width;
  if (file_bytes != expected)
    throw Error(path + ": file is " + std::to_string(file_bytes) + " bytes, but the header's token count " +
                std::to_string(n) + " means " + std::to_string(expected) +
                (file_bytes < expected ? " (a truncated shard?)" : ""));
  return {wide, (int64_t)n};
}

std::vector<int32_t> read_shard(const std::string& path, int vocab_size) {
  MappedShard shard(path);
  std::vector<int32_t> tokens((size_t)shard.size());
  shard.copy(0, shard.size(), tokens.data(), vocab_size);
  return tokens;
}

}  // namespace switchlora
