#include "train/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <regex>

#include "engine/error.h"

namespace switchlora {

RunLock::RunLock(const std::string& dir) {
  const std::string path = dir + "/lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error("--save_dir " + dir + ": cannot create " + path + ": " + std::strerror(errno));
  if (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    char holder[256] = {0};
    const ssize_t n = pread(fd_, holder, sizeof holder - 1, 0);
    std::string who = n > 0 ? std::string(holder, (size_t)n) : "another process";
    while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
    ::close(fd_);
    fd_ = -1;
    throw Error("--save_dir " + dir + " is in use by another run (" + who +
                "): give each run its own --save_dir, or wait for that one to finish");
  }
  char host[128] = "unknown";
  gethostname(host, sizeof host - 1);
  const std::string me = "pid " + std::to_string(getpid()) + " on " + host + "\n";
  if (ftruncate(fd_, 0) != 0 || pwrite(fd_, me.data(), me.size(), 0) != (ssize_t)me.size())
    throw Error("--save_dir " + dir + ": cannot write " + path + ": " + std::strerror(errno));
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock; the file stays, harmless
}

int remove_stale_temporaries(const std::string& dir) {
  const std::regex temporary(R"(.+\.tmp\.[0-9]+)");
  int n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.is_regular_file() && std::regex_match(e.path().filename().string(), temporary)) {
      std::filesystem::remove(e.path(), ec);
      n += !ec;
    }
  return n;
}

}  // namespace switchlora
