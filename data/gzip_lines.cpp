#include "data/gzip_lines.h"

#include "engine/error.h"

#if SWITCHLORA_JSONL
#include <zlib.h>

#include <cerrno>
#include <cstring>

namespace switchlora {

namespace {
constexpr size_t kChunk = 1 << 20;
}

GzipLines::GzipLines(const std::string& path) : path_(path), buffer_(kChunk) {
  gzFile gz = gzopen(path.c_str(), "rb");
  if (!gz) throw Error("cannot open " + path + ": " + (errno ? std::strerror(errno) : "out of memory"));
  gzbuffer(gz, 1 << 17);  // zlib's input buffer: fewer, larger reads
  gz_ = gz;
}

GzipLines::~GzipLines() {
  if (gz_) gzclose((gzFile)gz_);
}

int64_t GzipLines::compressed_offset() const { return (int64_t)gzoffset((gzFile)gz_); }

bool GzipLines::fill() {
  if (eof_) return false;
  if (begin_ > 0) {  // keep the unread tail, at the front
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (buffer_.size() - end_ < kChunk) buffer_.resize(end_ + kChunk);  // a long line grows the buffer
  int n = gzread((gzFile)gz_, buffer_.data() + end_, (unsigned)kChunk);
  int err = Z_OK;
  const char* msg = gzerror((gzFile)gz_, &err);
  // A stream cut short reads as the end of the data with Z_BUF_ERROR set.
  if (n < 0 || (err != Z_OK && err != Z_STREAM_END))
    throw Error(path_ + ": " + (err == Z_BUF_ERROR ? "truncated gzip stream (unexpected end of file)" : msg) +
                " in line " + std::to_string(line_number_ + 1));
  if (n == 0) {
    eof_ = true;
    return false;
  }
  end_ += (size_t)n;
  return true;
}

bool GzipLines::next(std::string& line) {
  size_t scanned = 0;  // bytes after begin_ known to hold no '\n' (fill() keeps them after begin_)
  for (;;) {
    const char* start = buffer_.data() + begin_;
    const void* nl = std::memchr(start + scanned, '\n', end_ - begin_ - scanned);
    if (nl) {
      size_t len = (const char*)nl - start;
      line.assign(start, len);
      begin_ += len + 1;
      line_number_++;
      return true;
    }
    scanned = end_ - begin_;
    if (!fill()) break;
  }
  if (begin_ == end_) return false;
  line.assign(buffer_.data() + begin_, end_ - begin_);  // the last line, without '\n'
  begin_ = end_;
  line_number_++;
  return true;
}

}  // namespace switchlora

#else  // built without zlib (CMakeLists.txt): prepare --jsonl refuses before it gets here

namespace switchlora {

GzipLines::GzipLines(const std::string& path) : path_(path) {
  throw Error("cannot read " + path + ": this build has no zlib (install zlib1g-dev and rebuild)");
}
GzipLines::~GzipLines() = default;
bool GzipLines::next(std::string&) { return false; }
int64_t GzipLines::compressed_offset() const { return 0; }
bool GzipLines::fill() { return false; }

}  // namespace switchlora

#endif
