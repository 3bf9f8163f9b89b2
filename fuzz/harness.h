// What each fuzz target does with one input (fuzz/fuzz_*.cpp wrap these for
// libFuzzer; tests/test_fuzz_regressions.cpp replays every input kept in
// fuzz/regressions/ through them in the normal build). A loader may reject
// its input only with switchlora::Error, the one-line message naming the
// file; anything else (another exception, a crash, a sanitizer report, a
// hang) is a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "data/file_io.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "engine/error.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/export.h"
#include "train/trainer.h"

namespace switchlora::fuzz {

// A scratch directory of this process (in /dev/shm when there is one).
inline const std::string& scratch() {
  static const std::string dir = [] {
    const std::string base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string d = base + "/switchlora_fuzz_" + std::to_string(getpid());
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

inline std::string write_input(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = scratch() + "/" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

// Runs `load`; a switchlora::Error is a correct rejection, anything else aborts.
template <class F>
void expect_clean(F&& load) {
  try {
    load();
  } catch (const Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz finding: %s escaped as %s\n", e.what(), typeid(e).name());
    std::abort();
  }
}

inline void shard(const uint8_t* data, size_t size) {
  const std::string path = write_input("shard.bin", data, size);
  expect_clean([&] { read_shard(path, 300); });
}

inline void config(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  expect_clean([&] { config_from_json(text, "config.json"); });
}

// The checkpoint loader, then the model it describes (config, adapters'
// shape, every tensor), as eval and --resume build it. Models bigger than a
// fuzzer should build are left to the memory check.
inline void checkpoint(const uint8_t* data, size_t size) {
  const std::string path = write_input("checkpoint.bin", data, size);
  expect_clean([&] {
    const Checkpoint ck = load_checkpoint(path);
    const LlamaConfig c = config_from_json(ck.meta.at("config").dump(), path);
    if ((double)c.hidden_size * c.vocab_size + (double)c.num_hidden_layers * c.hidden_size * c.intermediate_size > 1e6)
      return;
    model_from_checkpoint(ck, path);
  });
}

inline void safetensors(const uint8_t* data, size_t size) {
  const std::string path = write_input("model.safetensors", data, size);
  expect_clean([&] { load_safetensors(path); });
}

// A tokenizer directory: the input up to the first NUL byte is encoder.json,
// the rest vocab.bpe.
inline void tokenizer(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  const size_t nul = in.find('\0');
  const std::string enc = in.substr(0, nul), bpe = nul == std::string::npos ? "" : in.substr(nul + 1);
  const std::string dir = scratch() + "/tokenizer";
  std::filesystem::create_directories(dir);
  write_input("tokenizer/encoder.json", reinterpret_cast<const uint8_t*>(enc.data()), enc.size());
  write_input("tokenizer/vocab.bpe", reinterpret_cast<const uint8_t*>(bpe.data()), bpe.size());
  expect_clean([&] {
    const Tokenizer t = Tokenizer::load(dir);
    t.decode(t.encode("The jury said: \xc3\xa9t\xc3\xa9 1234 ...\n"));
  });
}

}  // namespace switchlora::fuzz
