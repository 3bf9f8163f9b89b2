// Whole-file reads and atomic writes: nothing on disk is ever half-written,
// because a file is written under a temporary name and renamed into place.
#pragma once
#include <cstdio>
#include <functional>
#include <string>

namespace switchlora {

// The file's bytes; throws Error naming the path if it cannot be read.
std::string read_file(const std::string& path);

// Writes `bytes` to path.tmp.<pid>, flushes it to disk, then renames it over
// `path`, so a reader sees the old file or the new one, never a mixture.
void write_file_atomic(const std::string& path, const std::string& bytes);
// The same for content too big to hold twice: `write` streams it into the
// temporary file and returns false on a write error.
void write_file_atomic(const std::string& path, const std::function<bool(FILE*)>& write);

}  // namespace switchlora
