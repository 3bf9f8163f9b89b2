#include "data/tokenizer.h"

#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>

#include "data/file_io.h"
#include "data/gpt2_bytes.h"
#include "data/pretokenize.h"
#include "engine/error.h"

namespace switchlora {

namespace {

const char kEndOfText[] = "<|endoftext|>";

std::string bytes_to_unicode(const std::string& bytes) {
  std::string s;
  for (unsigned char b : bytes) {
    uint32_t cp = kGpt2Bytes.to_unicode[b];
    if (cp < 0x80) s += (char)cp;
    else s += (char)(0xC0 | (cp >> 6)), s += (char)(0x80 | (cp & 0x3F));
  }
  return s;
}

// Inverse of bytes_to_unicode. Only code points below U+0144 (two UTF-8
// bytes at most) occur in GPT-2's map.
std::string unicode_to_bytes(const std::string& s, const std::string& where) {
  static const std::vector<int> from_unicode = [] {
    std::vector<int> v(0x144, -1);
    for (int b = 0; b < 256; b++) v[kGpt2Bytes.to_unicode[b]] = b;
    return v;
  }();
  std::string bytes;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = s[i];
    uint32_t cp = c;
    size_t len = 1;
    if ((c & 0xE0) == 0xC0 && i + 1 < s.size()) cp = (c & 0x1F) << 6 | (s[i + 1] & 0x3F), len = 2;
    if (cp >= from_unicode.size() || from_unicode[cp] < 0 || (c >= 0x80 && len == 1))
      throw Error(where + ": token \"" + s + "\" has a character outside GPT-2's byte map at byte " +
                  std::to_string(i));
    bytes += (char)from_unicode[cp];
    i += len;
  }
  return bytes;
}

}  // namespace

struct Tokenizer::Cache {
  std::mutex mutex;
  std::unordered_map<std::string, std::vector<int32_t>> ids;
};

void Tokenizer::index(const std::string& source) {
  std::unordered_map<std::string, int32_t> id_of;
  for (int32_t id = 0; id < (int32_t)tokens_.size(); id++)
    if (id != eot_) id_of.emplace(tokens_[id], id);
  for (int b = 0; b < 256; b++) {
    auto it = id_of.find(std::string(1, (char)b));
    if (it == id_of.end())
      throw Error(source + ": no token for byte " + std::to_string(b) + " (\"" +
                  bytes_to_unicode(std::string(1, (char)b)) + "\")");
    byte_token_[b] = it->second;
  }
  merge_of_.clear();
  for (int32_t rank = 0; rank < (int32_t)merges_.size(); rank++) {
    auto [left, right] = merges_[rank];
    auto it = id_of.find(tokens_[left] + tokens_[right]);
    if (it == id_of.end())
      throw Error(source + ": merge " + std::to_string(rank) + " (\"" + bytes_to_unicode(tokens_[left]) +
                  "\" \"" + bytes_to_unicode(tokens_[right]) + "\") makes a token that is not in the vocabulary");
    merge_of_.emplace(pair_key(left, right), Merge{rank, it->second});  // first rank wins
  }
  cache_ = std::make_shared<Cache>();
}

Tokenizer Tokenizer::load(const std::string& dir) {
  Tokenizer tok;
  std::string enc_path = dir + "/encoder.json", bpe_path = dir + "/vocab.bpe";
  nlohmann::json enc;
  try {
    enc = nlohmann::json::parse(read_file(enc_path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(enc_path + ": not valid JSON: " + e.what());
  }
  if (!enc.is_object() || enc.empty()) throw Error(enc_path + ": expected a non-empty object {\"token\": id}");
  size_t V = enc.size();
  tok.tokens_.resize(V);
  std::vector<bool> seen(V, false);
  std::unordered_map<std::string, int32_t> id_of;  // token bytes -> id, for the merges
  for (auto& [key, value] : enc.items()) {
    if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() >= (int64_t)V)
      throw Error(enc_path + ": token \"" + key + "\" has id " + value.dump() + ", expected an integer in [0, " +
                  std::to_string(V) + ")");
    int32_t id = value.get<int32_t>();
    if (seen[id]) throw Error(enc_path + ": id " + std::to_string(id) + " is used twice (again by \"" + key + "\")");
    seen[id] = true;
    if (key == kEndOfText) tok.eot_ = id;
    tok.tokens_[id] = unicode_to_bytes(key, enc_path);
    id_of.emplace(tok.tokens_[id], id);
  }
  if (tok.eot_ < 0) throw Error(enc_path + ": has no " + std::string(kEndOfText) + " token");

  std::string bpe = read_file(bpe_path);
  size_t line_no = 0;
  for (size_t pos = 0; pos < bpe.size();) {
    size_t end = bpe.find('\n', pos);
    if (end == std::string::npos) end = bpe.size();
    std::string line = bpe.substr(pos, end - pos);
    pos = end + 1;
    line_no++;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_no == 1 && line.starts_with("#version"))) continue;
    size_t space = line.find(' ');
    std::string where = bpe_path + " line " + std::to_string(line_no);
    if (space == 0 || space == std::string::npos || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string::npos)
      throw Error(where + ": expected \"left right\", got \"" + line + "\"");
    int32_t parts[2];
    for (int k = 0; k < 2; k++) {
      std::string part = k == 0 ? line.substr(0, space) : line.substr(space + 1);
      auto it = id_of.find(unicode_to_bytes(part, where));
      if (it == id_of.end()) throw Error(where + ": \"" + part + "\" is not a token in " + enc_path);
      parts[k] = it->second;
    }
    tok.merges_.emplace_back(parts[0], parts[1]);
  }
  tok.index(bpe_path);
  return tok;
}

void Tokenizer::save(const std::string& dir) const {
  std::filesystem::create_directories(dir);
  nlohmann::ordered_json enc = nlohmann::ordered_json::object();
  for (int32_t id = 0; id < vocab_size(); id++)
    enc[bytes_to_unicode(tokens_[id])] = id;
  std::string bpe = "#version: 0.2\n";
  for (auto [left, right] : merges_) bpe += bytes_to_unicode(tokens_[left]) + " " + bytes_to_unicode(tokens_[right]) + "\n";
  write_file_atomic(dir + "/encoder.json", enc.dump());
  write_file_atomic(dir + "/vocab.bpe", bpe);
}

// Merges one piece: repeatedly merge every occurrence (left to right) of the
// adjacent pair with the lowest rank, until no adjacent pair has a merge.
void Tokenizer::bpe(std::string_view piece, std::vector<int32_t>& out) const {
  std::vector<int32_t> word, next;
  for (unsigned char b : piece) word.push_back(byte_token_[b]);
  while (word.size() > 1) {
    const Merge* best = nullptr;
    int32_t left = 0, right = 0;
    for (size_t k = 0; k + 1 < word.size(); k++) {
      auto it = merge_of_.find(pair_key(word[k], word[k + 1]));
      if (it != merge_of_.end() && (!best || it->second.rank < best->rank))
        best = &it->second, left = word[k], right = word[k + 1];
    }
    if (!best) break;
    next.clear();
    for (size_t k = 0; k < word.size(); k++) {
      if (k + 1 < word.size() && word[k] == left && word[k + 1] == right) next.push_back(best->merged), k++;
      else next.push_back(word[k]);
    }
    word.swap(next);
  }
  out.insert(out.end(), word.begin(), word.end());
}

std::vector<int32_t> Tokenizer::encode(const std::string& text) const {
  // The cache is bounded: a web-scale corpus has tens of millions of distinct
  // pieces, but the frequent ones come back quickly after a clear.
  constexpr size_t kMaxCached = 1 << 20;
  std::vector<int32_t> ids;
  std::lock_guard<std::mutex> lock(cache_->mutex);
  for (std::string_view piece : pretokenize(text)) {
    auto it = cache_->ids.find(std::string(piece));
    if (it != cache_->ids.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      continue;
    }
    size_t start = ids.size();
    bpe(piece, ids);
    if (cache_->ids.size() >= kMaxCached) cache_->ids.clear();
    cache_->ids.emplace(piece, std::vector<int32_t>(ids.begin() + start, ids.end()));
  }
  return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string text;
  for (size_t i = 0; i < ids.size(); i++) {
    if (ids[i] < 0 || ids[i] >= vocab_size())
      throw Error("decode: token id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                  " is outside the vocabulary [0, " + std::to_string(vocab_size()) + ")");
    text += tokens_[ids[i]];
  }
  return text;
}

}  // namespace switchlora
