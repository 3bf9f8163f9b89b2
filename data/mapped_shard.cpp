#include "data/mapped_shard.h"

#include <algorithm>
#include <cstring>

#include "data/shard.h"
#include "engine/error.h"

namespace switchlora {

MappedShard::MappedShard(const std::string& path) : path_(path), file_(path) {
  // An empty file maps to nothing: parse_shard_header reports it as short.
  char head[kShardHeaderInts * 4] = {};
  if (file_.size() > 0) std::memcpy(head, file_.data(), std::min(sizeof head, file_.size()));
  const ShardLayout layout = parse_shard_header(path, head, file_.size());
  wide_ = layout.wide;
  tokens_ = layout.tokens;
}

void MappedShard::copy(int64_t begin, int64_t count, int32_t* out, int vocab_size) const {
  SL_CHECK(begin >= 0 && count >= 0 && begin + count <= tokens_, path_ + ": token range out of the shard");
  const char* in = file_.data() + kShardHeaderInts * 4;
  for (int64_t i = begin; i < begin + count; i++) {
    uint32_t t;
    if (wide_) std::memcpy(&t, in + 4 * i, 4);
    else {
      uint16_t s;
      std::memcpy(&s, in + 2 * i, 2);
      t = s;
    }
    if (t >= (uint32_t)vocab_size)
      throw Error(path_ + ": token " + std::to_string(t) + " at position " + std::to_string(i) +
                  " is outside the vocabulary (vocab_size " + std::to_string(vocab_size) + ")");
    *out++ = (int32_t)t;
  }
}

void MappedShard::release(int64_t begin, int64_t count) const {
  const size_t width = wide_ ? 4 : 2;
  file_.release(kShardHeaderInts * 4 + (size_t)begin * width, (size_t)count * width);
}

}  // namespace switchlora
