// The tokenizer of a prepared data directory, for the tools that turn text
// into ids and back (sample) or carry the tokenizer along (export): the
// byte-level BPE of prepare --corpus / --text (encoder.json + vocab.bpe) or
// the SentencePiece model of prepare --jsonl (meta.json + sentencepiece.model),
// told apart as data_vocab() tells them apart.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/sentencepiece.h"
#include "data/tokenizer.h"

namespace switchlora {

class DataTokenizer {
 public:
  // Throws Error naming the file that is missing or malformed.
  static DataTokenizer load(const std::string& dir);

  std::vector<int32_t> encode(const std::string& text) const;
  // SentencePiece: ids at or above its pieces (T5's extra ids, which no
  // encoded text holds) decode as its unknown piece, " ⁇ ".
  std::string decode(const std::vector<int32_t>& ids) const;
  int32_t eot_token() const { return eot_; }
  // The files of `dir` that make it up, so an export can carry a copy.
  std::vector<std::string> files() const;

 private:
  std::optional<Tokenizer> bpe_;
  std::optional<SentencePiece> sp_;
  int32_t eot_ = -1;
};

}  // namespace switchlora
