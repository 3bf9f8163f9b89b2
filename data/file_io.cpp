#include "data/file_io.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/error.h"

namespace switchlora {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error("cannot read " + path);
  return ss.str();
}

void write_file_atomic(const std::string& path, const std::function<bool(FILE*)>& write) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error("cannot create " + tmp + ": " + std::strerror(errno));
  bool ok = write(f);
  ok = std::fflush(f) == 0 && ok;
  ok = fsync(fileno(f)) == 0 && ok;
  ok = std::fclose(f) == 0 && ok;
  if (!ok) {
    int err = errno;
    std::remove(tmp.c_str());
    throw Error("cannot write " + tmp + ": " + std::strerror(err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    throw Error("cannot rename " + tmp + " to " + path + ": " + std::strerror(err));
  }
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  write_file_atomic(path, [&](FILE* f) { return bytes.empty() || std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size(); });
}

MappedFile::MappedFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open " + path + ": " + std::strerror(errno));
  struct stat st;
  const char* failed = nullptr;
  if (fstat(fd, &st) != 0) failed = "cannot stat ";
  else if (!S_ISREG(st.st_mode)) errno = EINVAL, failed = "not a regular file: ";
  else if (st.st_size > 0) {
    size_ = (size_t)st.st_size;
    map_ = mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
    if (map_ == MAP_FAILED) map_ = nullptr, failed = "cannot mmap ";
  }
  const int err = errno;
  ::close(fd);  // the mapping keeps the file
  if (failed) throw Error(failed + path + ": " + std::strerror(err));
}

MappedFile::~MappedFile() {
  if (map_) munmap(map_, size_);
}

MappedFile::MappedFile(MappedFile&& other) noexcept : map_(other.map_), size_(other.size_) {
  other.map_ = nullptr;
  other.size_ = 0;
}

// madvise is advice: a failure changes nothing but speed and memory, so it is not checked.
void MappedFile::advise_random() const {
  if (map_) madvise(map_, size_, MADV_RANDOM);
}

void MappedFile::release(size_t offset, size_t bytes) const {
  if (!map_ || bytes == 0) return;
  static const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), block = page * (page / sizeof(void*));
  const uintptr_t base = (uintptr_t)map_, end_of_map = base + (size_ + page - 1) / page * page;
  const uintptr_t first = std::max(base, (base + offset) / block * block);
  const uintptr_t end = std::min(end_of_map, (base + offset + bytes + block - 1) / block * block);
  madvise((void*)first, end - first, MADV_DONTNEED);
}

namespace fs = std::filesystem;

StagingDir::StagingDir(const std::string& out, const std::string& flag) : out_(out) {
  std::error_code ec;
  if (fs::exists(out, ec) && !(fs::is_directory(out, ec) && fs::is_empty(out, ec)))
    throw Error(flag + " " + out + " already exists and is not an empty directory: it is never overwritten, "
                "remove it or choose another");
  std::string parent = fs::path(out).parent_path().string();
  if (!parent.empty() && !fs::create_directories(parent, ec) && ec)
    throw Error(flag + " " + out + ": cannot create " + parent + ": " + ec.message());
  tmp_ = out + ".tmp." + std::to_string(getpid());
  fs::remove_all(tmp_, ec);
  if (!fs::create_directory(tmp_, ec))
    throw Error(flag + " " + out + ": cannot create " + tmp_ + ": " + (ec ? ec.message() : "it exists"));
}

StagingDir::~StagingDir() {
  std::error_code ec;
  if (!committed_) fs::remove_all(tmp_, ec);
}

void StagingDir::commit() {
  std::error_code ec;
  fs::remove(out_, ec);  // an empty directory (checked in the constructor); no-op when absent
  fs::rename(tmp_, out_, ec);
  committed_ = true;  // done or not, the finished files stay: they may be hours of work
  if (ec) throw Error("cannot rename " + tmp_ + " to " + out_ + ": " + ec.message() + " (the files are left in " +
                      tmp_ + ")");
}

}  // namespace switchlora
