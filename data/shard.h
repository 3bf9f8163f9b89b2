// Token shards in llm.c's format: a header of 256 int32 (little-endian), then
// the tokens.
//   header[0] magic   20240520 -> uint16 tokens (header[1] version 1)
//                     20240801 -> uint32 tokens (header[1] version 7)
//   header[2]         number of tokens
// The rest of the header is zero.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace switchlora {

constexpr int32_t kShardMagic16 = 20240520, kShardVersion16 = 1;
constexpr int32_t kShardMagic32 = 20240801, kShardVersion32 = 7;
constexpr int kShardHeaderInts = 256;

// Writes atomically. Tokens are stored as uint16 when all are < 65536 unless
// `uint32` forces the wide format. Throws Error naming the path on a negative
// token or more than 2^31 - 1 tokens (the count is an int32).
void write_shard(const std::string& path, const std::vector<int32_t>& tokens, bool uint32 = false);

// Reads and validates: magic, version, file size against the token count,
// and every token < vocab_size. Errors name the file, the field, the value.
std::vector<int32_t> read_shard(const std::string& path, int vocab_size);

}  // namespace switchlora
