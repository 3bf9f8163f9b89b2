// The lines of a gzip file (zlib's gzread; a file that is not gzip is read
// as it is, so plain .jsonl works too), one at a time in a reused buffer, of
// any length. A truncated or corrupt stream is an Error naming the file and
// the line it broke in, never a silently shorter input.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace switchlora {

class GzipLines {
 public:
  explicit GzipLines(const std::string& path);  // throws Error naming the path
  ~GzipLines();
  GzipLines(const GzipLines&) = delete;
  GzipLines& operator=(const GzipLines&) = delete;

  // The next line without its '\n' (a last line without one counts too);
  // false at the end of the file.
  bool next(std::string& line);
  int64_t line_number() const { return line_number_; }  // of the line last returned, from 1
  int64_t compressed_offset() const;  // bytes of the file consumed so far (progress)

 private:
  bool fill();  // more decompressed bytes into buffer_; false at the end

  std::string path_;
  void* gz_ = nullptr;  // gzFile
  std::vector<char> buffer_;
  size_t begin_ = 0, end_ = 0;  // unread bytes buffer_[begin_, end_)
  int64_t line_number_ = 0;
  bool eof_ = false;
};

}  // namespace switchlora
