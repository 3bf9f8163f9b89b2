#include "data/loader.h"

#include <algorithm>
#include <filesystem>
#include <numeric>

#include "data/shard.h"
#include "engine/error.h"
#include "engine/rng.h"

namespace switchlora {

DataLoader::DataLoader(const std::string& data_dir, const std::string& split, int B, int T, int rank, int world,
                       uint64_t seed, int vocab_size)
    : B_(B), T_(T), rank_(rank), world_(world), seed_(seed), shuffle_(split == "train") {
  if (split != "train" && split != "val") throw Error("data split \"" + split + "\" is neither \"train\" nor \"val\"");
  if (B < 1 || T < 1) throw Error("data loader: batch size B=" + std::to_string(B) + " and sequence length T=" +
                                  std::to_string(T) + " must be at least 1");
  if (world < 1 || rank < 0 || rank >= world)
    throw Error("data loader: rank " + std::to_string(rank) + " is not in [0, world=" + std::to_string(world) + ")");

  std::error_code ec;
  std::string infix = "_" + split + "_";
  for (auto& entry : std::filesystem::directory_iterator(data_dir, ec)) {
    std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && name.find(infix) != std::string::npos && name.ends_with(".bin"))
      files_.push_back(entry.path().string());
  }
  if (ec) throw Error("cannot list data directory " + data_dir + ": " + ec.message());
  if (files_.empty()) throw Error("no " + split + " shards (*" + infix + "*.bin) in " + data_dir);
  std::sort(files_.begin(), files_.end());
  for (auto& f : files_) {
    std::vector<int32_t> t = read_shard(f, vocab_size);
    tokens_.insert(tokens_.end(), t.begin(), t.end());
  }
  if (tokens_.size() < (size_t)T + 1 || num_sequences() < (int64_t)B * world)
    throw Error(data_dir + ": the " + split + " split has " + std::to_string(tokens_.size()) + " tokens, " +
                std::to_string(tokens_.size() < (size_t)T + 1 ? 0 : num_sequences()) + " sequences of T+1=" +
                std::to_string(T + 1) + ", fewer than one global batch of B*world=" + std::to_string(B * world));
}

void DataLoader::set_position(int64_t position) {
  if (position < 0) throw Error("data loader: position " + std::to_string(position) + " is negative");
  position_ = position;
}

// Fisher-Yates shuffle driven by a counter-based generator keyed by
// (seed, epoch), so any epoch's order can be recomputed from scratch.
const std::vector<int64_t>& DataLoader::order(int64_t epoch) {
  if (epoch == order_epoch_) return order_;
  int64_t n = num_sequences();
  order_.resize(n);
  std::iota(order_.begin(), order_.end(), 0);
  if (shuffle_) {
    Rng rng{hash64(seed_, kStreamData, (uint64_t)epoch), kStreamData, 0};
    for (int64_t i = n - 1; i > 0; i--) std::swap(order_[i], order_[rng.below(i + 1)]);
  }
  order_epoch_ = epoch;
  return order_;
}

void DataLoader::next_batch(int32_t* inputs, int32_t* targets) {
  int64_t per_batch = (int64_t)B_ * world_;
  const std::vector<int64_t>& seqs = order(position_ / batches_per_epoch());
  int64_t first = (position_ % batches_per_epoch()) * per_batch + (int64_t)rank_ * B_;
  for (int b = 0; b < B_; b++) {
    const int32_t* window = tokens_.data() + seqs[first + b] * T_;
    std::copy(window, window + T_, inputs + (size_t)b * T_);
    std::copy(window + 1, window + T_ + 1, targets + (size_t)b * T_);
  }
  position_++;
}

}  // namespace switchlora
