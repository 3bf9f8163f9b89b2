// Helpers for the distributed tests (on top of tests/cli.h): a command with a
// time limit (a mismatched collective must fail a test, never hang it), the
// mpirun prefix for a few local ranks, and a tiny prepared data directory.
#pragma once
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "cli.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "engine/rng.h"

namespace switchlora::test {

struct CommandResult {
  int status = -1;     // exit status; 124 when the time limit killed it
  std::string output;  // stdout and stderr together
  double seconds = 0;
};

// Runs `cmd` through the shell, killed after `limit_s` seconds.
inline CommandResult run_command(const std::string& cmd, int limit_s = 180) {
  CommandResult r;
  const auto t0 = std::chrono::steady_clock::now();
  const std::string full = "timeout -k 5 " + std::to_string(limit_s) + " " + cmd + " 2>&1";
  FILE* p = popen(full.c_str(), "r");
  REQUIRE(p);
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) r.output.append(buf, n);
  const int w = pclose(p);
  r.status = WIFEXITED(w) ? WEXITSTATUS(w) : 128 + WTERMSIG(w);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

// mpirun for np ranks on this machine, one OpenMP thread each (the ranks
// share the CPUs), more ranks than cores allowed.
inline std::string mpirun(int np) {
  std::string cmd = "mpirun --oversubscribe -x OMP_NUM_THREADS=1";
  if (geteuid() == 0) cmd += " --allow-run-as-root";
  // Under make test-asan: OpenMPI's dlopen'd components keep allocations until
  // exit that LeakSanitizer reports as "<unknown module>" (nothing a
  // suppression can name), so the ranks run with leak detection off; every
  // other check stays on.
  if (const char* asan = std::getenv("ASAN_OPTIONS")) cmd += std::string(" -x ASAN_OPTIONS=") + asan + ":detect_leaks=0";
  return cmd + " -np " + std::to_string(np);
}

// A data directory `switchlora train` accepts: a 300-token tokenizer and
// train/val shards of a noisy periodic token stream (learnable, so the loss
// moves within a few steps). Deterministic: two calls write the same bytes.
inline std::string make_tiny_data(const std::string& name) {
  const std::string dir = (std::filesystem::temp_directory_path() / (name + "_" + std::to_string(getpid()))).string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::string text;
  Rng rng{7, 3, 0};
  for (int i = 0; i < 4000; i++) text += std::string(1, (char)('a' + rng.below(26))) + (i % 7 ? "" : " ");
  Tokenizer::train(text, 300).save(dir);
  auto stream = [&](int n) {
    std::vector<int32_t> t(n);
    for (int i = 0; i < n; i++) t[i] = rng.below(8) ? (int32_t)((i * 7) % 97) : (int32_t)rng.below(300);
    return t;
  };
  write_shard(dir + "/tiny_train_000.bin", stream(40000));
  write_shard(dir + "/tiny_val_000.bin", stream(4000));
  return dir;
}

}  // namespace switchlora::test
