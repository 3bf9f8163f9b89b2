#include "data/shard.h"

#include <algorithm>
#include <bit>
#include <climits>
#include <cstring>

#include "data/file_io.h"
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

std::vector<int32_t> read_shard(const std::string& path, int vocab_size) {
  std::string bytes = read_file(path);
  int32_t header[kShardHeaderInts];
  if (bytes.size() < sizeof header)
    throw Error(path + ": " + std::to_string(bytes.size()) + " bytes is shorter than the " +
                std::to_string(sizeof header) + "-byte shard header");
  std::memcpy(header, bytes.data(), sizeof header);
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
  size_t width = wide ? 4 : 2, n = (size_t)header[2];
  size_t expected = sizeof header + n * width;
  if (bytes.size() != expected)
    throw Error(path + ": file is " + std::to_string(bytes.size()) + " bytes, but the header's token count " +
                std::to_string(n) + " means " + std::to_string(expected));
  std::vector<int32_t> tokens(n);
  const char* in = bytes.data() + sizeof header;
  for (size_t i = 0; i < n; i++) {
    uint32_t t = 0;
    if (wide) std::memcpy(&t, in + 4 * i, 4);
    else {
      uint16_t s;
      std::memcpy(&s, in + 2 * i, 2);
      t = s;
    }
    if (t >= (uint32_t)vocab_size)
      throw Error(path + ": token " + std::to_string(t) + " at position " + std::to_string(i) +
                  " is outside the vocabulary (vocab_size " + std::to_string(vocab_size) + ")");
    tokens[i] = (int32_t)t;
  }
  return tokens;
}

}  // namespace switchlora
