#include "data/jsonl_prepare.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <filesystem>
#include <fnmatch.h>
#include <glob.h>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "data/data_vocab.h"
#include "data/file_io.h"
#include "data/gzip_lines.h"
#include "data/sentencepiece.h"
#include "data/sha256.h"
#include "data/shard_writer.h"
#include "engine/error.h"

namespace switchlora {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kBatchBytes = 1 << 20, kBatchLines = 4096;  // a unit of work for one thread

struct Input {
  std::string path;
  bool val;
  int64_t bytes;  // on disk (compressed): what progress and ETA count
  int64_t documents = 0, tokens = 0;
};

// The files of every glob, each glob's matches in name order, each file once.
std::vector<Input> list_inputs(const JsonlOptions& o) {
  std::vector<Input> inputs;
  std::vector<std::string> seen;
  for (const std::string& pattern : o.globs) {
    glob_t g;
    const int rc = glob(pattern.c_str(), 0, nullptr, &g);
    if (rc != 0) {
      globfree(&g);
      throw Error("--jsonl '" + pattern + "' " + (rc == GLOB_NOMATCH ? "matches no file" : "cannot be listed"));
    }
    for (size_t i = 0; i < g.gl_pathc; i++) {
      const std::string path = g.gl_pathv[i];
      if (std::find(seen.begin(), seen.end(), path) != seen.end() || std::filesystem::is_directory(path)) continue;
      seen.push_back(path);
      // A pattern without '/' is matched against the file's name, as in .gitignore.
      const std::string subject =
          o.val_glob.find('/') == std::string::npos ? std::filesystem::path(path).filename().string() : path;
      inputs.push_back({path, fnmatch(o.val_glob.c_str(), subject.c_str(), 0) == 0,
                        (int64_t)std::filesystem::file_size(path)});
    }
    globfree(&g);
  }
  auto count = [&](bool val) { return std::count_if(inputs.begin(), inputs.end(), [&](auto& i) { return i.val == val; }); };
  if (count(true) == 0 || count(false) == 0)
    throw Error("--val_glob '" + o.val_glob + "' matches " + std::to_string(count(true)) + " of the " +
                std::to_string(inputs.size()) + " --jsonl files: both the train and the val split need at least one "
                "(C4's validation files are named c4-validation.*.json.gz)");
  return inputs;
}

// Consecutive lines of one file, then (from a worker) their tokens.
struct Batch {
  Batch(size_t input_, int64_t first_line_) : input(input_), first_line(first_line_) {}
  size_t input;        // index into the inputs
  int64_t first_line;  // the line number of lines[0]
  std::vector<std::string> lines;
  std::vector<int32_t> tokens;
  int64_t documents = 0;
  std::exception_ptr error;
  bool done = false;
};

bool blank(const std::string& line) { return line.find_first_not_of(" \t\r") == std::string::npos; }

// Each non-blank line is one JSON object whose "text" is a document:
// tokens += [eot, ids of the text...]. An error names the file and line.
void encode_batch(Batch& b, const std::string& path, const SentencePiece& sp, int32_t eot) {
  for (size_t i = 0; i < b.lines.size(); i++) {
    if (blank(b.lines[i])) continue;
    const std::string where = path + ":" + std::to_string(b.first_line + (int64_t)i);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(b.lines[i]);
    } catch (const nlohmann::json::parse_error& e) {
      const std::string msg = e.what();
      throw Error(where + ": not valid JSON: " + msg.substr(msg.find("] ") == std::string::npos ? 0 : msg.find("] ") + 2));
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
      throw Error(where + ": not a JSON object with a string field \"text\"");
    b.tokens.push_back(eot);
    const std::vector<int32_t> ids = sp.encode(j["text"].get_ref<const std::string&>());
    b.tokens.insert(b.tokens.end(), ids.begin(), ids.end());
    b.documents++;
  }
  b.lines = {};  // the text is no longer needed: free it while the batch waits its turn
}

// Workers encode batches in any order; the caller takes them back in the
// order they were submitted, so the output never depends on the threads.
class EncodePool {
 public:
  EncodePool(int threads, const SentencePiece& sp, int32_t eot, const std::vector<Input>& inputs)
      : max_in_flight_(4 * (size_t)threads) {
    for (int t = 0; t < threads; t++)
      workers_.emplace_back([this, model = sp.clone(), eot, &inputs] {
        for (;;) {
          Batch* b;
          {
            std::unique_lock lk(m_);
            work_cv_.wait(lk, [&] { return stop_ || !todo_.empty(); });
            if (todo_.empty()) return;
            b = todo_.front();
            todo_.pop_front();
          }
          try {
            encode_batch(*b, inputs[b->input].path, model, eot);
          } catch (...) {
            b->error = std::current_exception();
          }
          std::lock_guard lk(m_);
          b->done = true;
          done_cv_.notify_all();
        }
      });
  }
  ~EncodePool() {
    {
      std::lock_guard lk(m_);
      stop_ = true;
      todo_.clear();
    }
    work_cv_.notify_all();
    for (auto& w : workers_) w.join();
  }

  // Queues b, first waiting while too many batches are in flight; returns
  // the finished batches at the front, in order.
  std::vector<std::unique_ptr<Batch>> submit(std::unique_ptr<Batch> b) {
    std::unique_lock lk(m_);
    done_cv_.wait(lk, [&] { return in_flight_.size() < max_in_flight_ || in_flight_.front()->done; });
    todo_.push_back(b.get());
    in_flight_.push_back(std::move(b));
    work_cv_.notify_one();
    return take_done();
  }
  // Every batch still in flight, in order, once each is finished.
  std::vector<std::unique_ptr<Batch>> drain() {
    std::unique_lock lk(m_);
    done_cv_.wait(lk, [&] {
      return std::all_of(in_flight_.begin(), in_flight_.end(), [](auto& b) { return b->done; });
    });
    return take_done();
  }

 private:
  std::vector<std::unique_ptr<Batch>> take_done() {  // with m_ held
    std::vector<std::unique_ptr<Batch>> out;
    while (!in_flight_.empty() && in_flight_.front()->done) {
      out.push_back(std::move(in_flight_.front()));
      in_flight_.pop_front();
    }
    return out;
  }

  size_t max_in_flight_;
  std::mutex m_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<Batch*> todo_;
  std::deque<std::unique_ptr<Batch>> in_flight_;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

std::string duration(double seconds) {
  char buf[32];
  const long s = (long)seconds;
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, s / 60 % 60);
  else std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  return buf;
}

}  // namespace

void prepare_jsonl(const JsonlOptions& o) {
  const auto start = Clock::now();
  if (o.sentencepiece.empty()) throw Error("prepare --jsonl: --sentencepiece MODEL is required (T5's spiece.model)");
  if (o.out.empty()) throw Error("prepare: --out DIR is required");
  std::vector<Input> inputs = list_inputs(o);
  const SentencePiece sp = SentencePiece::load(o.sentencepiece, "--sentencepiece");
  const int32_t eot = sp.eos_id();
  if (eot < 0 || eot >= sp.vocab_size())
    throw Error("--sentencepiece " + o.sentencepiece + ": the model has no end-of-text id (eos_id " +
                std::to_string(eot) + "); train it with spm_train's default --eos_id");
  const int threads = o.threads > 0 ? o.threads : (int)std::max(1u, std::thread::hardware_concurrency());
  int64_t total_bytes = 0;
  for (auto& in : inputs) total_bytes += in.bytes;

  StagingDir dir(o.out, "--out");
  const bool wide = sp.vocab_size() > 65536;
  ShardWriter train(dir.path(), o.name + "_train", o.shard_tokens, wide, 6),
      val(dir.path(), o.name + "_val", o.shard_tokens, wide, 6);
  int64_t documents = 0, text_bytes = 0, done_bytes = 0;  // done_bytes: compressed, of finished files
  auto write = [&](std::vector<std::unique_ptr<Batch>> done) {
    for (auto& b : done) {
      if (b->error) std::rethrow_exception(b->error);  // the first error in file order
      Input& in = inputs[b->input];
      (in.val ? val : train).add(b->tokens.data(), b->tokens.size());
      in.documents += b->documents;
      in.tokens += (int64_t)b->tokens.size();
      documents += b->documents;
    }
  };
  auto last_progress = Clock::now();
  const bool tty = isatty(fileno(stderr));
  auto progress = [&](int64_t read_bytes, bool final) {
    const double t = std::chrono::duration<double>(Clock::now() - start).count(), frac = (double)read_bytes / total_bytes;
    std::fprintf(stderr, "%sprepare: %5.1f%% of %.1f MB | %lld documents | %lld tokens | %.1f MB/s of JSON | %s %s%s",
                 tty ? "\r" : "", 100 * frac, total_bytes / 1e6, (long long)documents,
                 (long long)(train.tokens() + val.tokens()), text_bytes / 1e6 / std::max(t, 1e-9),
                 final ? "took" : "ETA", duration(final ? t : frac > 0 ? t * (1 - frac) / frac : 0).c_str(),
                 tty && !final ? "" : "\n");
    std::fflush(stderr);
    last_progress = Clock::now();
  };

  {
    EncodePool pool(threads, sp, eot, inputs);
    for (size_t i = 0; i < inputs.size(); i++) {
      GzipLines lines(inputs[i].path);
      auto batch = std::make_unique<Batch>(i, 1);
      size_t batch_bytes = 0;
      std::string line;
      for (bool more = lines.next(line);; more = lines.next(line)) {
        if (more) {
          batch_bytes += line.size();
          text_bytes += (int64_t)line.size() + 1;
          batch->lines.push_back(std::move(line));
        }
        if (!more || batch_bytes >= kBatchBytes || batch->lines.size() >= kBatchLines) {
          write(pool.submit(std::move(batch)));
          batch = std::make_unique<Batch>(i, lines.line_number() + 1);
          batch_bytes = 0;
          if (std::chrono::duration<double>(Clock::now() - last_progress).count() >= o.progress_seconds)
            progress(done_bytes + lines.compressed_offset(), false);
        }
        if (!more) break;
      }
      done_bytes += inputs[i].bytes;
    }
    write(pool.drain());
  }
  progress(total_bytes, true);

  nlohmann::json meta = {{"format", 1},
                         {"tokenizer", "sentencepiece"},
                         {"tokenizer_file", kSentencePieceFile},
                         {"tokenizer_sha256", sha256_hex(sp.model_bytes())},
                         {"vocab_size", sp.vocab_size()},
                         {"eot_token", eot},
                         {"eot_before_every_document", true},
                         {"token_bytes", wide ? 4 : 2},
                         {"shard_tokens", o.shard_tokens}};
  std::vector<std::string> files = {kSentencePieceFile, kMetaFile};
  for (bool is_val : {false, true}) {
    nlohmann::json split = {{"inputs", nlohmann::json::array()}, {"documents", 0}, {"tokens", 0}};
    for (auto& in : inputs)
      if (in.val == is_val) {
        split["inputs"].push_back({{"file", in.path}, {"bytes", in.bytes}, {"documents", in.documents},
                                   {"tokens", in.tokens}});
        split["documents"] = split["documents"].get<int64_t>() + in.documents;
        split["tokens"] = split["tokens"].get<int64_t>() + in.tokens;
      }
    const char* name = is_val ? "val" : "train";
    if (split["tokens"] == 0) throw Error("prepare --jsonl: the " + std::string(name) + " split has no documents");
    split["shards"] = (is_val ? val : train).finish();
    for (auto& s : split["shards"]) files.push_back(s.get<std::string>());
    meta[name] = split;
  }
  write_file_atomic(dir.path() + "/" + kSentencePieceFile, sp.model_bytes());
  write_file_atomic(dir.path() + "/" + kMetaFile, meta.dump(2) + "\n");
  std::string sums;
  for (auto& file : files) sums += sha256_file_hex(dir.path() + "/" + file) + "  " + file + "\n";
  write_file_atomic(dir.path() + "/SHA256SUMS", sums);
  dir.commit();

  const double t = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("prepare: %lld documents (%lld train, %lld val) from %zu files, %.2f MB of JSON\n", (long long)documents,
              (long long)meta["train"]["documents"].get<int64_t>(), (long long)meta["val"]["documents"].get<int64_t>(),
              inputs.size(), text_bytes / 1e6);
  std::printf("prepare: SentencePiece %s, vocab %d, end-of-text id %d\n", o.sentencepiece.c_str(), sp.vocab_size(),
              eot);
  std::printf("prepare: %lld train tokens, %lld val tokens, %.1f MB/s on %d threads\n", (long long)train.tokens(),
              (long long)val.tokens(), text_bytes / 1e6 / t, threads);
  std::printf("prepare: wrote %s in %.2f s\n", o.out.c_str(), t);
}

}  // namespace switchlora
