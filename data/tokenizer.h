// Byte-level BPE tokenizer, GPT-2 style (Radford et al. 2019).
//
// Text is split by GPT-2's pre-tokeniser (data/pretokenize.h), each piece is
// taken as bytes, and the merges are applied in rank order inside the piece.
// Token ids: every one of the 256 bytes is a token, so any byte string
// encodes and decode(encode(s)) == s.
//
// On disk it is GPT-2's own format, so GPT-2's files load unchanged:
//   encoder.json  {"token": id, ...}, the token's bytes written through
//                 GPT-2's byte-to-unicode map (printable characters only)
//   vocab.bpe     "#version: 0.2", then one merge "left right" per line, by rank
// A trained tokenizer has the 256 byte tokens (in GPT-2's order), then one
// token per merge, then <|endoftext|> last.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace switchlora {

class Tokenizer {
 public:
  static Tokenizer load(const std::string& dir);
  void save(const std::string& dir) const;

  // Learns vocab_size - 257 merges on `text` (256 byte tokens + merges +
  // <|endoftext|>). Ties between equally frequent pairs go to the smaller
  // (left id, right id), so training is deterministic.
  static Tokenizer train(const std::string& text, int vocab_size);

  // Plain text: the characters "<|endoftext|>" are encoded as text, never as
  // the end-of-text token (as GPT-2's encoder does); insert eot_token() by id.
  // Thread-safe; pieces seen before come from a cache.
  std::vector<int32_t> encode(const std::string& text) const;
  std::string decode(const std::vector<int32_t>& ids) const;

  int vocab_size() const { return (int)tokens_.size(); }
  int32_t eot_token() const { return eot_; }

 private:
  struct Merge {
    int32_t rank, merged;
  };
  struct Cache;

  Tokenizer() = default;
  // Fills merge_of_, byte_token_ and the cache from tokens_, merges_, eot_;
  // `source` names where they came from, for error messages.
  void index(const std::string& source);
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
  }
  void bpe(std::string_view piece, std::vector<int32_t>& out) const;

  std::vector<std::string> tokens_;                   // id -> bytes
  std::vector<std::pair<int32_t, int32_t>> merges_;   // rank -> (left id, right id)
  std::unordered_map<uint64_t, Merge> merge_of_;      // pair_key(left, right) -> merge
  int32_t byte_token_[256] = {};                      // byte -> its token id
  int32_t eot_ = -1;
  std::shared_ptr<Cache> cache_;                      // piece -> ids
};

}  // namespace switchlora
