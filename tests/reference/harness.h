// The C++ side of the PyTorch reference (formats in tests/reference/README.md):
// write TOK.bin, run run_reference.py, read OUT.bin, compare tensors.
// Shared by tests/test_reference.cpp and tests/test_export.cpp.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

#include "data/file_io.h"
#include "model/export.h"

namespace switchlora::test {

// Debian's python3 with python3-torch (make deps-test); SWITCHLORA_PYTHON overrides.
inline std::string python() {
  const char* p = std::getenv("SWITCHLORA_PYTHON");
  return p && *p ? p : "/usr/bin/python3";
}

// A missing PyTorch fails the test loudly: a reference check that silently
// skips would pass on exactly the machines where nobody looked.
inline void require_torch() {
  const std::string cmd = python() + " -c 'import torch, numpy' >/dev/null 2>&1";
  REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0,
                  python() << " cannot import torch and numpy; install python3-torch with `make deps-test`");
}

// A fresh, empty directory under the system temp dir, unique to this process.
inline std::string fresh_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / (name + "_" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

// TOK.bin: "SLTK", u32 version 1, u32 B, u32 T, then tokens (B, T+1) as i32.
inline void write_tokens(const std::string& path, const std::vector<int32_t>& tokens, int B, int T) {
  REQUIRE(tokens.size() == (size_t)B * (T + 1));
  const uint32_t head[3] = {1, (uint32_t)B, (uint32_t)T};
  std::string out = "SLTK";
  out.append(reinterpret_cast<const char*>(head), sizeof head);
  out.append(reinterpret_cast<const char*>(tokens.data()), tokens.size() * sizeof(int32_t));
  write_file_atomic(path, out);
}

// OUT.bin, version 1, read back whole.
struct RefOut {
  uint32_t B = 0, T = 0, V = 0;
  std::vector<float> logits;  // (B, T, V)
  float loss = 0;
  std::vector<NamedTensor> grads;
  std::vector<float> losses, grad_norms;  // (K)
  std::vector<NamedTensor> finals;
};

inline RefOut read_ref_out(const std::string& path) {
  const std::string blob = read_file(path);
  size_t pos = 0;
  auto take = [&](void* dst, size_t bytes) {
    REQUIRE_MESSAGE(pos + bytes <= blob.size(), path << ": truncated at byte " << pos);
    if (bytes) std::memcpy(dst, blob.data() + pos, bytes);  // an empty vector's data() may be null
    pos += bytes;
  };
  auto u32 = [&]() { uint32_t v; take(&v, 4); return v; };
  auto floats = [&](size_t n) { std::vector<float> v(n); take(v.data(), n * 4); return v; };
  auto record = [&]() {
    NamedTensor t;
    t.name.resize(u32());
    take(t.name.data(), t.name.size());
    const uint32_t ndim = u32();
    for (uint32_t d = 0; d < ndim; d++) t.shape.push_back(u32());
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    t.data = floats((size_t)n);
    return t;
  };
  char magic[8];
  take(magic, 8);
  REQUIRE_MESSAGE(std::memcmp(magic, "SLREF\0\0\0", 8) == 0, path << ": bad magic");
  RefOut r;
  REQUIRE(u32() == 1);
  r.B = u32(), r.T = u32(), r.V = u32();
  const uint32_t n_grads = u32(), K = u32(), n_finals = u32();
  r.logits = floats((size_t)r.B * r.T * r.V);
  take(&r.loss, 4);
  for (uint32_t i = 0; i < n_grads; i++) r.grads.push_back(record());
  r.losses = floats(K);
  r.grad_norms = floats(K);
  for (uint32_t i = 0; i < n_finals; i++) r.finals.push_back(record());
  REQUIRE_MESSAGE(pos == blob.size(), path << ": " << blob.size() - pos << " trailing bytes");
  return r;
}

// Runs tests/reference/run_reference.py (the test's working directory is the
// repository root) and requires it to succeed.
inline void run_reference(const std::vector<std::string>& args) {
  std::string cmd = python() + " tests/reference/run_reference.py";
  for (const std::string& a : args) cmd += " '" + a + "'";
  INFO("command: " << cmd);
  REQUIRE(std::system(cmd.c_str()) == 0);
}

// The error measure of every comparison with the reference, per tensor:
//   ||a - b||_2 / max(||b||_2, 1e-30)    (b the reference; sums in double)
inline double rel_err(const float* a, const float* b, size_t n) {
  double e = 0, nb = 0;
  for (size_t i = 0; i < n; i++) {
    e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    nb += (double)b[i] * b[i];
  }
  return std::sqrt(e) / std::max(std::sqrt(nb), 1e-30);
}

inline double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  return rel_err(a.data(), b.data(), a.size());
}

}  // namespace switchlora::test
