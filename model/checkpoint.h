// Checkpoint files: a JSON header and named binary blobs, written atomically.
//
//   "SLCKPT\0\0" (8 bytes) | uint32 version = 2 | uint32 0 | uint64 header bytes
//   | uint64 FNV-1a checksum of the header bytes, then of every blob
//   header: JSON {"meta": {...}, "blobs": [{"name", "bytes", "offset"}...]}
//   blob bytes, back to back
//
// The trainer decides what goes in: one blob per tensor under its HF name
// (model.layers.3.self_attn.q_proj.weight, ...lora_A.weight), the
// optimizer's state as optimizer.<tensor>.exp_avg / .exp_avg_sq / .step,
// SwitchLoRA's pools as <layer>.lora_A.candidates / .lora_B.candidates, and
// step, data position and method state in the header; this file only knows
// how to store it safely. A checksum over the header and every blob catches
// truncated, corrupted or edited files.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/backend.h"

namespace switchlora {

struct Checkpoint {
  nlohmann::json meta = nlohmann::json::object();
  std::map<std::string, std::vector<char>> blobs;

  template <class T>
  void put(const std::string& name, const std::vector<T>& v) {
    const char* p = reinterpret_cast<const char*>(v.data());
    blobs[name].assign(p, p + v.size() * sizeof(T));
  }
  // Copies blob `name` into v, which must already have the right size.
  template <class T>
  void get(const std::string& name, std::vector<T>& v, const std::string& path) const {
    const std::vector<char>& b = blob(name, path);
    check_size(name, b.size(), v.size() * sizeof(T), path);
    std::copy(b.begin(), b.end(), reinterpret_cast<char*>(v.data()));
  }
  // The same for backend memory, through a host copy.
  template <class T>
  void put(const std::string& name, const Buffer<T>& b) { put(name, b.to_host()); }
  template <class T>
  void get(const std::string& name, Buffer<T>& b, const std::string& path) const {
    std::vector<T> v(b.size());
    get(name, v, path);
    b.from_host(v);
  }
  const std::vector<char>& blob(const std::string& name, const std::string& path) const;
  // Blob `name`, read as float32 values, holds no inf or NaN (false when absent).
  bool finite(const std::string& name) const;
  static void check_size(const std::string& name, size_t got, size_t want, const std::string& path);
};

// Writes `path.tmp`, flushes, then renames over `path`: a crash never leaves a
// half-written checkpoint under the real name.
void save_checkpoint(const std::string& path, const Checkpoint& ck);
Checkpoint load_checkpoint(const std::string& path);

// A training run's directory keeps checkpoint_<step>.bin files and a file
// `latest` naming the newest. A directory resolves to its newest checkpoint,
// a file to itself; "" when a directory has none yet.
std::string resolve_checkpoint(const std::string& path);
// Saves `ck` as dir/checkpoint_<step>.bin, points dir/latest at it, and keeps
// only the newest `keep` checkpoints (keep <= 0: all). Returns the path.
std::string save_run_checkpoint(const std::string& dir, int step, const Checkpoint& ck, int keep);

}  // namespace switchlora
