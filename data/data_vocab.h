// The vocabulary a prepared data directory (switchlora prepare) was
// tokenized with, so a training run can check its model covers every id:
//   DIR/encoder.json + vocab.bpe  the byte-level BPE tokenizer (data/tokenizer.h)
//                                 of prepare --corpus / --text
//   DIR/meta.json                 written by prepare --jsonl: the SentencePiece
//                                 model's size and end-of-text id (the model
//                                 itself is DIR/sentencepiece.model)
#pragma once
#include <cstdint>
#include <string>

namespace switchlora {

constexpr const char* kMetaFile = "meta.json";
constexpr const char* kSentencePieceFile = "sentencepiece.model";

struct DataVocab {
  std::string tokenizer;  // "bpe" or "sentencepiece"
  int vocab_size;         // every token id in the shards is below it
  int32_t eot_token;      // the id that precedes every document
};

// meta.json when the directory has one, else the BPE tokenizer's files;
// throws Error naming the file that is missing or malformed.
DataVocab data_vocab(const std::string& dir);

}  // namespace switchlora
