// SHA-256 (FIPS 180-4), for the checksums of prepared data (SHA256SUMS).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace switchlora {

// Incremental: update() with the bytes in order, in pieces of any size, then
// hex() once. Equal to sha256_hex of the concatenation.
class Sha256 {
 public:
  void update(const void* data, size_t n);
  std::string hex();  // pads and finishes: call once

 private:
  uint32_t h_[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  unsigned char block_[64];
  size_t used_ = 0;      // bytes waiting in block_
  uint64_t total_ = 0;   // bytes seen
};

// Lower-case hex digest of `bytes`, as sha256sum prints it.
std::string sha256_hex(const std::string& bytes);
// The digest of a file read in 1 MiB pieces (shards can be gigabytes);
// throws Error naming the path if it cannot be read.
std::string sha256_file_hex(const std::string& path);

}  // namespace switchlora
