// The error `switchlora train` would print for these flags (parse_train_flags,
// train/options.cpp), or "" when they parse: for tests of flag checks that
// need no model.
#pragma once
#include <string>
#include <vector>

#include "engine/error.h"
#include "train/flags.h"
#include "train/options.h"

namespace switchlora::test {

inline std::string train_flags_error(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  try {
    Flags f((int)argv.size(), argv.data(), "train", "");
    parse_train_flags(f);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// The options `switchlora train ARGS` would run with (throws switchlora::Error
// as train would, unknown arguments included).
inline TrainOptions parse_train(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  Flags f((int)argv.size(), argv.data(), "train", "");
  TrainOptions o = parse_train_flags(f);
  f.finish();
  return o;
}

}  // namespace switchlora::test
