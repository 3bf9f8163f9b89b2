#include "data/data_tokenizer.h"

#include "data/data_vocab.h"
#include "engine/error.h"

namespace switchlora {

DataTokenizer DataTokenizer::load(const std::string& dir) {
  const DataVocab vocab = data_vocab(dir);
  DataTokenizer t;
  t.eot_ = vocab.eot_token;
  if (vocab.tokenizer == "bpe") {
    t.bpe_.emplace(Tokenizer::load(dir));
  } else if (vocab.tokenizer == "sentencepiece") {
    t.sp_.emplace(SentencePiece::load(dir + "/" + kSentencePieceFile, dir + "/" + kMetaFile + " names"));
  } else {
    throw Error(dir + "/" + kMetaFile + ": unknown \"tokenizer\" \"" + vocab.tokenizer +
                "\" (bpe or sentencepiece)");
  }
  return t;
}

std::vector<int32_t> DataTokenizer::encode(const std::string& text) const {
  return bpe_ ? bpe_->encode(text) : sp_->encode(text);
}

std::vector<std::string> DataTokenizer::files() const {
  if (bpe_) return {"encoder.json", "vocab.bpe"};
  return {kMetaFile, kSentencePieceFile};
}

std::string DataTokenizer::decode(const std::vector<int32_t>& ids) const {
  return bpe_ ? bpe_->decode(ids) : sp_->decode(ids);
}

}  // namespace switchlora
