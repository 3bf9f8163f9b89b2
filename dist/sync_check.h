// Ranks agree or fail fast. Data-parallel ranks never exchange weights: they
// stay identical only because they start from the same config, flags, data
// and seed, and then do the same deterministic arithmetic on the same
// averaged gradients. These checks turn a silent disagreement (or a hang in
// a mismatched collective) into a CollectiveError naming what differs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dist/communicator.h"

namespace switchlora {

// A 64-bit digest of the bytes (equal bytes, equal digests; any one changed
// 8-byte word always changes it). Parallel, yet independent of the thread count.
uint64_t hash_bytes(const void* data, size_t bytes);

// A digest of a file: of all of it up to 16 MiB, else of its size and 32
// blocks of 64 KiB spread over it (2 MiB read however large the shard).
uint64_t fingerprint_file(const std::string& path);

// {"file": base name, "bytes": size, "hash": fingerprint_file} for each path,
// so two ranks can compare their data without sending it, in time
// independent of the corpus size.
nlohmann::json describe_files(const std::vector<std::string>& paths);

// Returns when every rank passed the same identity (one all_equal of its
// digest). Otherwise every rank throws the same CollectiveError naming, for
// each rank, each field whose value differs from rank 0's, e.g.
//   "rank 1 has lr = 0.002 (rank 0: 0.001)".
void check_ranks_agree(Communicator& comm, const nlohmann::json& identity);

struct NamedBuffer {
  std::string name;  // "trainable parameters", "frozen weights", "candidates"
  const float* data;
  size_t n;
};

// Compares a digest of each buffer across ranks; if any differ, every rank
// throws the same CollectiveError naming the buffers and `when` ("at step 40").
void check_in_sync(Communicator& comm, const std::vector<NamedBuffer>& buffers, const std::string& when);

// A JSON value as a user would type it: a float (widened to double in the
// JSON) prints as 0.002, not 0.0020000000949949026.
std::string show_value(const nlohmann::json& v);

}  // namespace switchlora
