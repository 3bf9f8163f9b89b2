// prepare --jsonl: the paper's data pipeline (DESIGN §7). C4's json.gz files
// (one JSON object per line; its "text" field is a document) are tokenized
// with a SentencePiece model (T5's spiece.model for the paper) on every core
// and streamed into llm.c shards:
//
//   OUT/<name>_train_000000.bin, ...  documents of the train files, each
//   OUT/<name>_val_000000.bin, ...    preceded by the model's end-of-text id
//   OUT/sentencepiece.model           a copy of the model
//   OUT/meta.json                     vocab_size and eot_token (what a
//                                     training run checks), counts, inputs
//   OUT/SHA256SUMS                    `sha256sum -c` checks the files above
//
// The split is C4's own: files whose name matches val_glob (C4's
// c4-validation.*.json.gz) are the val split, the rest train. Shards hold
// uint16 ids when the model has at most 65536 pieces, else uint32. The
// output is the same for any number of threads: documents keep file and
// line order. Everything is written into OUT.tmp.<pid>, renamed to OUT at
// the end; on any error nothing is left, and an existing OUT is never
// touched.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace switchlora {

struct JsonlOptions {
  std::vector<std::string> globs;  // --jsonl, each a glob(3) pattern, in order
  std::string val_glob = "*validation*";  // matched against the name (the path if it has a '/')
  std::string sentencepiece;              // the model file
  std::string out;
  std::string name = "jsonl";             // shard file prefix
  int64_t shard_tokens = 100'000'000;
  int threads = 0;                        // 0: every core
  double progress_seconds = 2.0;          // between progress lines on stderr
};

// Throws Error naming the flag, file and line of the first problem.
void prepare_jsonl(const JsonlOptions& o);

}  // namespace switchlora
