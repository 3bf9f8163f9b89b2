// A token shard (data/shard.h) mapped read-only into memory (MappedFile).
//
// Opening checks the header against the file's size and maps the file: the
// same time and memory for a shard of a thousand tokens or of a billion. The
// kernel pages tokens in as they are read; they are clean pages of the file,
// shared with the page cache and dropped again under memory pressure, so a
// loader over tens of billions of tokens never holds a copy of them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "data/file_io.h"

namespace switchlora {

class MappedShard {
 public:
  // Throws Error naming the file if it cannot be opened or mapped, or its
  // header does not match its size (parse_shard_header).
  explicit MappedShard(const std::string& path);

  const std::string& path() const { return path_; }
  int64_t size() const { return tokens_; }  // tokens
  bool wide() const { return wide_; }       // uint32 tokens on disk

  // out[i] = token begin + i for i < count (within [0, size())); throws
  // Error naming the file and the position of a token >= vocab_size.
  void copy(int64_t begin, int64_t count, int32_t* out, int vocab_size) const;
  // Reads will jump around (shuffled training windows): MappedFile::advise_random.
  void advise_random() const { file_.advise_random(); }
  // Unmaps what reading tokens [begin, begin + count) mapped (MappedFile::release).
  void release(int64_t begin, int64_t count) const;

 private:
  std::string path_;
  MappedFile file_;
  bool wide_ = false;
  int64_t tokens_ = 0;
};

}  // namespace switchlora
