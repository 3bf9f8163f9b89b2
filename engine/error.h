// Errors: library code throws switchlora::Error with a message that names the
// file, field or flag and the bad value; main() prints "switchlora: error: ..."
// and exits 2.
#pragma once
#include <stdexcept>
#include <string>

namespace switchlora {

struct Error : std::runtime_error {
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace switchlora

// Internal invariant checks (not user input): these name the file and line.
#define SL_CHECK(cond, msg)                                                       \
  do {                                                                            \
    if (!(cond))                                                                  \
      throw ::switchlora::Error(std::string(__FILE__) + ":" +                     \
                                std::to_string(__LINE__) + ": " + (msg));         \
  } while (0)
