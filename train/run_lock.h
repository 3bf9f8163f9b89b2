// One run per --save_dir. Two runs writing the same directory would rotate
// and overwrite each other's checkpoints; the second one refuses to start.
//
// The lock is flock() on SAVE_DIR/lock, which the kernel releases when the
// process dies however it dies (kill -9 included), so a crashed run never
// leaves a stale lock. The file holds the holder's pid and host for the
// error message.
#pragma once
#include <string>

namespace switchlora {

class RunLock {
 public:
  explicit RunLock(const std::string& dir);  // throws naming the holder
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

// Removes the temporaries (NAME.tmp.PID, see data/file_io.h) that a run killed
// while writing left in `dir`; call it holding the lock. Returns how many.
int remove_stale_temporaries(const std::string& dir);

}  // namespace switchlora
