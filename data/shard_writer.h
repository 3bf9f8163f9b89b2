// Streams tokens into a numbered series of shards (data/shard.h):
// DIR/<prefix>_000.bin, _001.bin, ... of `shard_tokens` tokens each, the last
// one shorter. Memory is a small buffer whatever the corpus size: tokens go
// straight to the open shard's file, whose header is written once its count
// is known. Each shard is written under a temporary name, flushed and
// renamed into place when full (or at finish()), so no reader ever sees a
// half-written shard.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace switchlora {

class ShardWriter {
 public:
  // wide: uint32 tokens (needed for ids >= 65536), else uint16. digits: the
  // zero-padded width of the shard number (3 as our prepare has always
  // written, 6 as llm.c's; more shards than the width allows is an error,
  // since the names would no longer sort in order).
  ShardWriter(std::string dir, std::string prefix, int64_t shard_tokens, bool wide, int digits = 3);
  ~ShardWriter();  // an unfinished shard's temporary file is removed
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Throws Error naming the shard on a token outside [0, 65536) (uint16) or
  // negative, and on a write error.
  void add(const int32_t* tokens, size_t n);
  // Closes the last shard; returns the names of all, in order (none when no
  // token was added).
  std::vector<std::string> finish();

  int64_t tokens() const { return total_; }

 private:
  void open_shard();
  void close_shard();

  std::string dir_, prefix_;
  int64_t shard_tokens_;
  bool wide_;
  int digits_;
  FILE* file_ = nullptr;
  std::string tmp_path_;
  int64_t in_shard_ = 0, total_ = 0;
  std::vector<char> buffer_;  // encoded tokens waiting for fwrite
  std::vector<std::string> names_;
};

}  // namespace switchlora
