// Batches of token windows for training and evaluation.
//
// All shards *_<split>_*.bin in a directory (sorted by name) are mapped
// read-only (data/mapped_shard.h) and read as one concatenated token stream,
// which is cut into windows of T + 1 tokens at stride T: sequence s is
// tokens [s*T, s*T + T], its inputs the first T, its targets the last T (a
// window may span two shards). Nothing is read until a batch needs it, and
// each window is unmapped again once copied (MappedFile::release), so a
// loader over tens of billions of tokens starts in milliseconds and its
// memory grows neither with the corpus nor with the length of the run.
//
// Global micro-batch i (i = position()) covers B*world sequences, and rank r
// takes its B sequences [r*B, (r+1)*B) of them. Every epoch uses the first
// batches_per_epoch() * B * world sequences of an order: for "train" a
// permutation drawn afresh for each epoch from (seed, epoch), for "val" the
// file order. Since the order depends only on (seed, epoch) and a batch only
// on B*world, two ranks with batch b see exactly the sequences one rank with
// batch 2b sees, and a checkpointed position() resumes exactly, on any
// number of ranks with the same B*world.
//
// The train permutation: up to kMaterialisedOrderMax sequences, a
// Fisher-Yates shuffle held as a vector (8 bytes a sequence; the order every
// run before the memory-mapped loader used, kept so that their results and
// checkpoints still reproduce); above it, a KeyedPermutation
// (data/permutation.h) computed on demand in O(1) memory.
//
// Every token is checked against vocab_size as a batch copies it (an error
// names the shard and the position); the first kCheckedAtOpen tokens of each
// shard are also checked when it is opened, so a data directory tokenized
// for another vocabulary fails at start, not hours in.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/mapped_shard.h"

namespace switchlora {

class DataLoader {
 public:
  static constexpr int64_t kMaterialisedOrderMax = 1 << 20;
  static constexpr int64_t kCheckedAtOpen = 1 << 16;

  // materialised_order_max: kMaterialisedOrderMax but in tests of the keyed order.
  DataLoader(const std::string& data_dir, const std::string& split, int B, int T, int rank, int world,
             uint64_t seed, int vocab_size, int64_t materialised_order_max = kMaterialisedOrderMax);

  // inputs, targets: (B, T); targets[b][t] = inputs[b][t + 1] within the window.
  void next_batch(int32_t* inputs, int32_t* targets);

  int64_t position() const { return position_; }  // global micro-batches consumed
  void set_position(int64_t position);
  void reset() { set_position(0); }  // validation: start the split over

  int64_t num_tokens() const { return num_tokens_; }
  int64_t num_sequences() const { return (num_tokens_ - 1) / T_; }
  int64_t batches_per_epoch() const { return num_sequences() / ((int64_t)B_ * world_); }
  const std::vector<std::string>& files() const { return files_; }

 private:
  int64_t sequence(int64_t epoch, int64_t i);  // the i-th sequence of the epoch's order
  void copy_tokens(int64_t begin, int64_t count, int32_t* out) const;  // from the concatenated stream

  std::vector<std::string> files_;
  std::vector<MappedShard> shards_;
  std::vector<int64_t> shard_start_;  // stream offset of each shard's first token
  int64_t num_tokens_ = 0;
  int B_, T_, rank_, world_, vocab_size_;
  int64_t materialised_order_max_;
  uint64_t seed_;
  bool shuffle_;
  int64_t position_ = 0;
  std::vector<int32_t> window_;  // T + 1 tokens
  // The materialised order of the current epoch: a pure function of
  // (seed, epoch), kept only so it is not redrawn for every batch.
  int64_t order_epoch_ = -1;
  std::vector<int64_t> order_;
};

}  // namespace switchlora
