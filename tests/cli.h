// Running the `switchlora` binary from tests: the path comes from ctest's
// SWITCHLORA_BIN, the prepared Brown data from `make data` (prepared here
// when missing, so a test run from a fresh clone works too).
#pragma once
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace switchlora::test {

struct RunResult {
  int rc = -1;
  std::string output;  // stdout and stderr together
};

inline std::string bin() {
  const char* b = std::getenv("SWITCHLORA_BIN");
  REQUIRE_MESSAGE(b != nullptr, "SWITCHLORA_BIN is not set (run the tests through ctest)");
  return b;
}

inline RunResult run(const std::string& cmd) {
  RunResult r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// data/brown, prepared on first use.
inline std::string brown_data() {
  if (!std::ifstream("data/brown/SHA256SUMS")) {
    RunResult r = run("tools/prepare_data.sh " + bin() + " data/brown");
    REQUIRE_MESSAGE(r.rc == 0, "preparing data/brown failed:\n" << r.output);
  }
  return "data/brown";
}

// metrics.jsonl as a list of objects.
inline std::vector<nlohmann::json> read_metrics(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

// Only the per-step training lines (those with "loss").
inline std::vector<nlohmann::json> train_lines(const std::vector<nlohmann::json>& m) {
  std::vector<nlohmann::json> out;
  for (const auto& j : m)
    if (j.contains("loss")) out.push_back(j);
  return out;
}

}  // namespace switchlora::test
