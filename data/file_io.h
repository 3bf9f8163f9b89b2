// Whole-file reads and atomic writes: nothing on disk is ever half-written,
// because a file (or a directory of files) is written under a temporary name
// and renamed into place.
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

// A file mapped read-only into memory (mmap): its bytes without a copy, paged
// in by the kernel as they are read (clean pages it may drop again), so a
// file of any size costs no memory of its own. Throws Error naming the path.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile& operator=(MappedFile&&) = delete;

  const char* data() const { return (const char*)map_; }  // nullptr for an empty file
  size_t size() const { return size_; }
  // Reads will jump around (madvise MADV_RANDOM): read from disk only the
  // pages touched, without the kernel's read-ahead around each.
  void advise_random() const;
  // Unmaps what reading [offset, offset + bytes) mapped into this process
  // (madvise MADV_DONTNEED; a read-only file's pages stay in the page cache,
  // and a later read maps them again), so the resident set holds no more of
  // the file than the piece being read. A page fault maps more than the page
  // read (the kernel's fault-around, a large folio's 2 MiB mapping), but
  // never beyond the page-table block that holds it (2 MiB with 4 KiB
  // pages), so the whole block or blocks are unmapped.
  void release(size_t offset, size_t bytes) const;

 private:
  void* map_ = nullptr;
  size_t size_ = 0;
};

// A directory written as a whole: files go into `out`.tmp.<pid> (path()),
// and commit() renames it to `out`. Destroyed uncommitted (an error, an
// exception) it is removed, so `out` either appears complete or not at all.
// `flag` names where `out` came from, for errors. An existing `out` is never
// overwritten: the constructor refuses one that is not an empty directory,
// before any work is done.
class StagingDir {
 public:
  StagingDir(const std::string& out, const std::string& flag);
  ~StagingDir();
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;

  const std::string& path() const { return tmp_; }
  void commit();

 private:
  std::string out_, tmp_;
  bool committed_ = false;
};

}  // namespace switchlora
