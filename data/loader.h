// Batches of token windows for training and evaluation.
//
// All shards *_<split>_*.bin in a directory (sorted by name) are read and
// concatenated into one token stream, which is cut into windows of T + 1
// tokens at stride T: sequence s is tokens [s*T, s*T + T], its inputs the
// first T, its targets the last T.
//
// Global micro-batch i (i = position()) covers B*world sequences, and rank r
// takes its B sequences [r*B, (r+1)*B) of them. Every epoch uses the first
// batches_per_epoch() * B * world sequences of an order: for "train" a
// permutation drawn afresh for each epoch from (seed, epoch), for "val" the
// file order. Since the order depends only on (seed, epoch) and a batch only
// on B*world, two ranks with batch b see exactly the sequences one rank with
// batch 2b sees, and a checkpointed position() resumes exactly, on any
// number of ranks with the same B*world.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace switchlora {

class DataLoader {
 public:
  DataLoader(const std::string& data_dir, const std::string& split, int B, int T, int rank, int world,
             uint64_t seed, int vocab_size);

  // inputs, targets: (B, T); targets[b][t] = inputs[b][t + 1] within the window.
  void next_batch(int32_t* inputs, int32_t* targets);

  int64_t position() const { return position_; }  // global micro-batches consumed
  void set_position(int64_t position);
  void reset() { set_position(0); }  // validation: start the split over

  int64_t num_sequences() const { return ((int64_t)tokens_.size() - 1) / T_; }
  int64_t batches_per_epoch() const { return num_sequences() / ((int64_t)B_ * world_); }
  const std::vector<std::string>& files() const { return files_; }

 private:
  const std::vector<int64_t>& order(int64_t epoch);

  std::vector<std::string> files_;
  std::vector<int32_t> tokens_;
  int B_, T_, rank_, world_;
  uint64_t seed_;
  bool shuffle_;
  int64_t position_ = 0;
  // The order of the current epoch: a pure function of (seed, epoch), kept
  // only so it is not redrawn for every batch.
  int64_t order_epoch_ = -1;
  std::vector<int64_t> order_;
};

}  // namespace switchlora
