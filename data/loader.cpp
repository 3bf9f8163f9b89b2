#include "data/loader.h"

#include <algorithm>
#include <filesystem>
#include <numeric>

#include "data/permutation.h"
#include "engine/error.h"
#include "engine/rng.h"

namespace switchlora {

DataLoader::DataLoader(const std::string& data_dir, const std::string& split, int B, int T, int rank, int world,
                       uint64_t seed, int vocab_size, int64_t materialised_order_max)
    : B_(B), T_(T), rank_(rank), world_(world), vocab_size_(vocab_size),
      materialised_order_max_(materialised_order_max), seed_(seed), shuffle_(split == "train") {
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
  std::vector<int32_t> head;
  for (auto& f : files_) {
    shards_.emplace_back(f);
    const MappedShard& s = shards_.back();
    if (shuffle_) s.advise_random();
    head.resize((size_t)std::min(s.size(), kCheckedAtOpen));
    s.copy(0, (int64_t)head.size(), head.data(), vocab_size);
    s.release(0, (int64_t)head.size());
    shard_start_.push_back(num_tokens_);
    num_tokens_ += s.size();
  }
  if (num_tokens_ < (int64_t)T + 1 || num_sequences() < (int64_t)B * world)
    throw Error(data_dir + ": the " + split + " split has " + std::to_string(num_tokens_) + " tokens, " +
                std::to_string(num_tokens_ < (int64_t)T + 1 ? 0 : num_sequences()) + " sequences of T+1=" +
                std::to_string(T + 1) + ", fewer than one global batch of B*world=" + std::to_string(B * world));
  window_.resize((size_t)T + 1);
}

void DataLoader::set_position(int64_t position) {
  if (position < 0) throw Error("data loader: position " + std::to_string(position) + " is negative");
  position_ = position;
}

int64_t DataLoader::sequence(int64_t epoch, int64_t i) {
  if (!shuffle_) return i;
  const int64_t n = num_sequences();
  const uint64_t key = hash64(seed_, kStreamData, (uint64_t)epoch);
  if (n > materialised_order_max_) return (int64_t)KeyedPermutation((uint64_t)n, key)((uint64_t)i);
  // Fisher-Yates shuffle driven by a counter-based generator keyed by
  // (seed, epoch), so any epoch's order can be recomputed from scratch.
  if (epoch != order_epoch_) {
    order_.resize(n);
    std::iota(order_.begin(), order_.end(), 0);
    Rng rng{key, kStreamData, 0};
    for (int64_t k = n - 1; k > 0; k--) std::swap(order_[k], order_[rng.below(k + 1)]);
    order_epoch_ = epoch;
  }
  return order_[i];
}

void DataLoader::copy_tokens(int64_t begin, int64_t count, int32_t* out) const {
  // The shard holding `begin`: the last one that starts at or before it.
  size_t s = std::upper_bound(shard_start_.begin(), shard_start_.end(), begin) - shard_start_.begin() - 1;
  while (count > 0) {
    const int64_t offset = begin - shard_start_[s], take = std::min(count, shards_[s].size() - offset);
    shards_[s].copy(offset, take, out, vocab_size_);
    shards_[s].release(offset, take);  // the window is copied: its pages need not stay mapped
    out += take, begin += take, count -= take;
    s++;  // empty shards are stepped over: take is 0 for them
  }
}

void DataLoader::next_batch(int32_t* inputs, int32_t* targets) {
  int64_t per_batch = (int64_t)B_ * world_;
  int64_t epoch = position_ / batches_per_epoch();
  int64_t first = (position_ % batches_per_epoch()) * per_batch + (int64_t)rank_ * B_;
  for (int b = 0; b < B_; b++) {
    copy_tokens(sequence(epoch, first + b) * T_, T_ + 1, window_.data());
    std::copy(window_.begin(), window_.end() - 1, inputs + (size_t)b * T_);
    std::copy(window_.begin() + 1, window_.end(), targets + (size_t)b * T_);
  }
  position_++;
}

}  // namespace switchlora
