#include "model/checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "data/file_io.h"
#include "engine/error.h"

namespace switchlora {

namespace {

const char kMagic[8] = {'S', 'L', 'C', 'K', 'P', 'T', 0, 0};
const uint32_t kVersion = 2;  // 1: flat "trainable"/"frozen"/"adam_m" blobs, header unchecked

uint64_t fnv1a(const char* p, size_t n, uint64_t h) {
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 0x100000001B3ull;
  return h;
}

}  // namespace

const std::vector<char>& Checkpoint::blob(const std::string& name, const std::string& path) const {
  auto it = blobs.find(name);
  if (it == blobs.end()) throw Error(path + ": checkpoint has no \"" + name + "\" section");
  return it->second;
}

bool Checkpoint::finite(const std::string& name) const {
  auto it = blobs.find(name);
  if (it == blobs.end()) return false;
  for (size_t i = 0; i + sizeof(float) <= it->second.size(); i += sizeof(float)) {
    float x;
    std::memcpy(&x, it->second.data() + i, sizeof x);
    if (!std::isfinite(x)) return false;
  }
  return true;
}

void Checkpoint::check_size(const std::string& name, size_t got, size_t want, const std::string& path) {
  if (got != want)
    throw Error(path + ": checkpoint section \"" + name + "\" has " + std::to_string(got) +
                " bytes, this model expects " + std::to_string(want) +
                " (different config or method?)");
}

void save_checkpoint(const std::string& path, const Checkpoint& ck) {
  nlohmann::json header = {{"meta", ck.meta}, {"blobs", nlohmann::json::array()}};
  uint64_t offset = 0;
  for (const auto& [name, b] : ck.blobs) {
    header["blobs"].push_back({{"name", name}, {"bytes", b.size()}, {"offset", offset}});
    offset += b.size();
  }
  const std::string h = header.dump();
  // The checksum covers the header as written, then every blob.
  uint64_t hash = fnv1a(h.data(), h.size(), 0xCBF29CE484222325ull);
  for (const auto& [name, b] : ck.blobs) hash = fnv1a(b.data(), b.size(), hash);
  const uint32_t v[2] = {kVersion, 0};
  const uint64_t lengths[2] = {h.size(), hash};
  // Streamed into the temporary file: a checkpoint is never held twice in memory.
  write_file_atomic(path, [&](FILE* f) {
    bool ok = std::fwrite(kMagic, 1, 8, f) == 8 && std::fwrite(v, 4, 2, f) == 2 &&
              std::fwrite(lengths, 8, 2, f) == 2 && std::fwrite(h.data(), 1, h.size(), f) == h.size();
    for (const auto& [name, b] : ck.blobs) ok = ok && (b.empty() || std::fwrite(b.data(), 1, b.size(), f) == b.size());
    return ok;
  });
}

Checkpoint load_checkpoint(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open checkpoint");
  std::error_code ec;
  const uint64_t file_bytes = std::filesystem::file_size(path, ec);
  if (ec) throw Error(path + ": cannot open checkpoint (" + ec.message() + ")");
  char magic[8];
  uint32_t v[2];
  uint64_t lengths[2] = {0, 0};
  f.read(magic, 8);
  f.read(reinterpret_cast<char*>(v), 8);
  if (!f || std::memcmp(magic, kMagic, 8) != 0) throw Error(path + ": not a switchlora checkpoint (bad magic)");
  if (v[0] == 1)
    throw Error(path + ": checkpoint version 1 predates the named-tensor format (version 2) and cannot be "
                       "loaded by this build; retrain, or load it with a switchlora from before December 2026");
  if (v[0] != kVersion)
    throw Error(path + ": checkpoint version " + std::to_string(v[0]) + ", expected " + std::to_string(kVersion));
  f.read(reinterpret_cast<char*>(lengths), 16);
  const uint64_t hlen = lengths[0], expected = lengths[1];
  if (!f || hlen > file_bytes - std::min<uint64_t>(file_bytes, 32))
    throw Error(path + ": corrupt checkpoint header length (" + std::to_string(hlen) + " bytes in a file of " +
                std::to_string(file_bytes) + ")");
  std::string h(hlen, '\0');
  f.read(h.data(), (std::streamsize)hlen);
  if (!f) throw Error(path + ": truncated checkpoint header");
  uint64_t hash = fnv1a(h.data(), h.size(), 0xCBF29CE484222325ull);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(h);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": corrupt checkpoint header: " + e.what());
  }
  Checkpoint ck;
  uint64_t left = file_bytes - 32 - hlen;  // bytes after the header: the blobs
  try {
    ck.meta = header.at("meta");
    for (const auto& b : header.at("blobs")) {
      const std::string name = b.at("name").get<std::string>();
      const uint64_t bytes = b.at("bytes").get<uint64_t>();
      // Never allocate more than the file holds: a corrupt size is an error, not a bad_alloc.
      if (bytes > left)
        throw Error(path + ": truncated or corrupt checkpoint (section \"" + name + "\" claims " +
                    std::to_string(bytes) + " bytes, " + std::to_string(left) + " remain)");
      left -= bytes;
      std::vector<char>& data = ck.blobs[name];
      data.resize(bytes);
      f.read(data.data(), (std::streamsize)data.size());
      if (!f) throw Error(path + ": truncated checkpoint (section \"" + name + "\")");
      hash = fnv1a(data.data(), data.size(), hash);
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": corrupt checkpoint header: " + e.what());
  }
  if (hash != expected) throw Error(path + ": checkpoint checksum mismatch (corrupt file)");
  return ck;
}

std::string resolve_checkpoint(const std::string& path) {
  if (!std::filesystem::is_directory(path)) return path;
  const std::string latest = path + "/latest";
  if (!std::filesystem::exists(latest)) return "";
  std::string name = read_file(latest);
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  return path + "/" + name;
}

std::string save_run_checkpoint(const std::string& dir, int step, const Checkpoint& ck, int keep) {
  char name[64];
  std::snprintf(name, sizeof name, "checkpoint_%08d.bin", step);
  const std::string path = dir + "/" + name;
  save_checkpoint(path, ck);
  write_file_atomic(dir + "/latest", std::string(name) + "\n");
  if (keep > 0) {
    std::vector<std::string> all;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      const std::string f = e.path().filename().string();
      if (f.rfind("checkpoint_", 0) == 0 && f.size() == std::strlen(name) && f.substr(f.size() - 4) == ".bin")
        all.push_back(f);
    }
    std::sort(all.begin(), all.end());  // zero-padded steps sort by step
    for (size_t i = 0; i + keep < all.size(); i++) std::filesystem::remove(dir + "/" + all[i]);
  }
  return path;
}

}  // namespace switchlora
