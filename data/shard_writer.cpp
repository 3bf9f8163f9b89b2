#include "data/shard_writer.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <unistd.h>

#include "data/shard.h"
#include "engine/error.h"

namespace switchlora {

ShardWriter::ShardWriter(std::string dir, std::string prefix, int64_t shard_tokens, bool wide, int digits)
    : dir_(std::move(dir)), prefix_(std::move(prefix)), shard_tokens_(shard_tokens), wide_(wide), digits_(digits) {
  if (shard_tokens < 1 || shard_tokens > INT32_MAX)
    throw Error("shard size " + std::to_string(shard_tokens) + " tokens is not in [1, 2^31 - 1]");
  SL_CHECK(digits >= 1 && digits <= 9, "shard number width");
}

ShardWriter::~ShardWriter() {
  if (file_) {
    std::fclose(file_);
    std::remove(tmp_path_.c_str());
  }
}

void ShardWriter::open_shard() {
  char number[16];
  std::snprintf(number, sizeof number, "_%0*zu.bin", digits_, names_.size());
  if (std::strlen(number) != (size_t)digits_ + 5)
    throw Error(dir_ + "/" + prefix_ + ": more than " + std::to_string(names_.size()) + " shards do not fit " +
                std::to_string(digits_) + "-digit numbers");
  names_.push_back(prefix_ + number);
  tmp_path_ = dir_ + "/" + names_.back() + ".tmp." + std::to_string(getpid());
  file_ = std::fopen(tmp_path_.c_str(), "wb");
  if (!file_) throw Error("cannot create " + tmp_path_ + ": " + std::strerror(errno));
  const int32_t header[kShardHeaderInts] = {};  // rewritten at close, when the count is known
  if (std::fwrite(header, sizeof header, 1, file_) != 1) throw Error("cannot write " + tmp_path_);
  in_shard_ = 0;
}

void ShardWriter::close_shard() {
  int32_t header[kShardHeaderInts] = {};
  header[0] = wide_ ? kShardMagic32 : kShardMagic16;
  header[1] = wide_ ? kShardVersion32 : kShardVersion16;
  header[2] = (int32_t)in_shard_;
  bool ok = buffer_.empty() || std::fwrite(buffer_.data(), 1, buffer_.size(), file_) == buffer_.size();
  buffer_.clear();
  ok = ok && std::fseek(file_, 0, SEEK_SET) == 0 && std::fwrite(header, sizeof header, 1, file_) == 1;
  ok = std::fflush(file_) == 0 && ok;
  ok = fsync(fileno(file_)) == 0 && ok;
  ok = std::fclose(file_) == 0 && ok;
  file_ = nullptr;
  const std::string path = dir_ + "/" + names_.back();
  if (!ok || std::rename(tmp_path_.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp_path_.c_str());
    throw Error("cannot write " + path + ": " + std::strerror(err));
  }
}

void ShardWriter::add(const int32_t* tokens, size_t n) {
  const uint32_t limit = wide_ ? (uint32_t)INT32_MAX : 0xFFFFu;
  for (size_t i = 0; i < n; i++) {
    if (!file_) open_shard();
    if (tokens[i] < 0 || (uint32_t)tokens[i] > limit)
      throw Error(dir_ + "/" + names_.back() + ": token " + std::to_string(tokens[i]) + " does not fit a " +
                  (wide_ ? "uint32" : "uint16") + " shard");
    if (wide_) {
      const uint32_t t = (uint32_t)tokens[i];
      buffer_.insert(buffer_.end(), (const char*)&t, (const char*)&t + 4);
    } else {
      const uint16_t t = (uint16_t)tokens[i];
      buffer_.insert(buffer_.end(), (const char*)&t, (const char*)&t + 2);
    }
    in_shard_++, total_++;
    if (buffer_.size() >= (1u << 20)) {
      if (std::fwrite(buffer_.data(), 1, buffer_.size(), file_) != buffer_.size())
        throw Error("cannot write " + tmp_path_ + ": " + std::strerror(errno));
      buffer_.clear();
    }
    if (in_shard_ == shard_tokens_) close_shard();
  }
}

std::vector<std::string> ShardWriter::finish() {
  if (file_) close_shard();
  return names_;
}

}  // namespace switchlora
