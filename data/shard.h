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
// (data/mapped_shard.h reads a shard without copying it into memory.)
std::vector<int32_t> read_shard(const std::string& path, int vocab_size);

// What a shard's header says, checked against the size of its file.
struct ShardLayout {
  bool wide;       // uint32 tokens (else uint16)
  int64_t tokens;  // header[2]
};
// `head` holds the file's first min(file_bytes, 1024) bytes. Throws Error
// naming `path` on a short file, a bad magic or version, a negative count, or
// a file size that is not header + count * token width (a truncated shard).
ShardLayout parse_shard_header(const std::string& path, const char* head, uint64_t file_bytes);

}  // namespace switchlora
