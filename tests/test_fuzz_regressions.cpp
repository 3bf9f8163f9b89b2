// Every input make fuzz ever found a problem with (fuzz/regressions/<target>/),
// replayed through the same harness in the normal build: each must now be a
// clean switchlora::Error or load, never a crash. Seeds of each kind are
// replayed too, so the harness itself is exercised even with no findings.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "fuzz/harness.h"

namespace {

std::string read(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

TEST_CASE("inputs kept in fuzz/regressions/ load or fail cleanly") {
  const std::map<std::string, void (*)(const uint8_t*, size_t)> targets = {
      {"shard", switchlora::fuzz::shard},
      {"config", switchlora::fuzz::config},
      {"checkpoint", switchlora::fuzz::checkpoint},
      {"safetensors", switchlora::fuzz::safetensors},
      {"tokenizer", switchlora::fuzz::tokenizer}};
  int replayed = 0;
  for (const auto& [name, run] : targets) {
    const std::filesystem::path dir = "fuzz/regressions/" + name;
    if (!std::filesystem::is_directory(dir)) continue;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      if (!e.is_regular_file() || e.path().filename() == "README.md") continue;
      INFO(e.path().string());
      const std::string bytes = read(e.path());
      run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());  // aborts on a finding
      replayed++;
    }
  }
  // The empty input and a few hostile ones, for every target.
  for (const auto& [name, run] : targets)
    for (const std::string& bytes : {std::string(), std::string("\0", 1), std::string(100000, '\xff'),
                                    std::string("SLCKPT\0\0\x02\0\0\0\0\0\0\0", 16), std::string("{\"a\":")}) {
      INFO(name);
      run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    }
  MESSAGE(replayed << " kept fuzz inputs replayed");
  std::filesystem::remove_all(switchlora::fuzz::scratch());
}
