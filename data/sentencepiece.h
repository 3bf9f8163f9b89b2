// A SentencePiece model (Kudo & Richardson 2018) through Debian's
// libsentencepiece: T5's spiece.model for the paper's C4 runs (32000 pieces,
// </s> = 1; T5's 100 extra ids make its model vocabulary 32100, beyond the
// pieces, and never appear in encoded text), or one trained with spm_train.
// Encoding is the library's own, so ids equal those of Python's
// sentencepiece and of Hugging Face's T5Tokenizer (without the </s> it
// appends).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace switchlora {

class SentencePiece {
 public:
  // `flag` names where the path came from (--sentencepiece) for errors.
  static SentencePiece load(const std::string& path, const std::string& flag);
  SentencePiece(SentencePiece&&) noexcept;
  ~SentencePiece();

  // Thread-compatible: call from one thread at a time (or keep a copy each,
  // see clone()).
  std::vector<int32_t> encode(const std::string& text) const;
  // Ids at or above vocab_size() (T5's extra ids) decode as the unknown piece.
  std::string decode(const std::vector<int32_t>& ids) const;
  SentencePiece clone() const;  // an independent processor of the same model

  int vocab_size() const;  // pieces: every id encode() can return is below it
  int32_t eos_id() const;  // -1 when the model has none
  const std::string& model_bytes() const { return bytes_; }  // the model file, as read

 private:
  struct Impl;
  SentencePiece() = default;
  std::unique_ptr<Impl> impl_;
  std::string bytes_;
};

// Whether this build has SentencePiece and zlib (prepare --jsonl).
bool have_sentencepiece();

}  // namespace switchlora
