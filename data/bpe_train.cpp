// Tokenizer::train: byte-level BPE learned on a corpus (Sennrich et al. 2016,
// GPT-2's byte-level variant).
//
// The corpus is pre-tokenised once and reduced to distinct pieces ("words")
// with their frequencies; merges never cross pieces, so this loses nothing.
// Pair counts are kept for the whole corpus and updated incrementally: a
// merge of (a, b) only revisits the words that contain (a, b), found through
// an index pair -> words. The most frequent pair is taken from a max-heap with
// lazy deletion: an entry whose count is out of date is re-pushed with the
// current count when it surfaces. Counts of existing pairs only ever fall
// (only pairs with the new token are new), so the first up-to-date entry on
// top is the true maximum.
#include <algorithm>
#include <queue>
#include <string_view>

#include "data/gpt2_bytes.h"
#include "data/pretokenize.h"
#include "data/tokenizer.h"
#include "engine/error.h"

namespace switchlora {
namespace {

struct Word {
  std::vector<int32_t> syms;
  int64_t count;
};

struct Candidate {
  int64_t count;
  uint64_t pair;
  // Max-heap order: higher count first, then the smaller pair key.
  bool operator<(const Candidate& o) const { return count != o.count ? count < o.count : pair > o.pair; }
};

uint64_t key_of(int32_t a, int32_t b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }

}  // namespace

Tokenizer Tokenizer::train(const std::string& text, int vocab_size) {
  if (vocab_size < 257)
    throw Error("tokenizer training: vocab_size " + std::to_string(vocab_size) +
                " is below 257 (256 byte tokens + <|endoftext|>)");
  Tokenizer tok;
  std::vector<int32_t> byte_id(256);
  for (int i = 0; i < 256; i++) {
    tok.tokens_.push_back(std::string(1, (char)kGpt2Bytes.order[i]));
    byte_id[kGpt2Bytes.order[i]] = i;
  }

  std::unordered_map<std::string_view, int64_t> freq;
  for (std::string_view piece : pretokenize(text)) freq[piece]++;
  std::vector<Word> words;
  words.reserve(freq.size());
  for (auto& [piece, count] : freq) {
    Word w{{}, count};
    for (unsigned char b : piece) w.syms.push_back(byte_id[b]);
    words.push_back(std::move(w));
  }

  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int32_t>> words_with;  // may hold stale entries
  for (int32_t w = 0; w < (int32_t)words.size(); w++)
    for (size_t k = 0; k + 1 < words[w].syms.size(); k++) {
      uint64_t p = key_of(words[w].syms[k], words[w].syms[k + 1]);
      pair_count[p] += words[w].count;
      words_with[p].push_back(w);
    }
  std::priority_queue<Candidate> heap;
  for (auto& [p, c] : pair_count) heap.push({c, p});

  auto add_pairs = [&](const std::vector<int32_t>& s, int64_t c) {
    for (size_t k = 0; k + 1 < s.size(); k++) {
      uint64_t p = key_of(s[k], s[k + 1]);
      if ((pair_count[p] += c) == 0) pair_count.erase(p);
    }
  };

  // Two merges can spell the same string ("ab"+"c", later "a"+"bc"); they
  // share one token, so count tokens, not merges.
  std::unordered_map<std::string, int32_t> id_of;
  for (int32_t id = 0; id < 256; id++) id_of.emplace(tok.tokens_[id], id);
  std::vector<int32_t> visited(words.size(), -1), merged;
  for (int32_t m = 0; (int)tok.tokens_.size() < vocab_size - 1; m++) {
    Candidate best{0, 0};
    while (!heap.empty()) {
      Candidate top = heap.top();
      heap.pop();
      auto it = pair_count.find(top.pair);
      int64_t now = it == pair_count.end() ? 0 : it->second;
      if (now == top.count) {
        best = top;
        break;
      }
      if (now > 0) heap.push({now, top.pair});
    }
    if (best.count == 0)
      throw Error("tokenizer training: the corpus has only " + std::to_string(m) +
                  " possible merges, too few for vocab_size " + std::to_string(vocab_size));

    int32_t a = (int32_t)(best.pair >> 32), b = (int32_t)(best.pair & 0xFFFFFFFFu);
    auto [slot, is_new] = id_of.emplace(tok.tokens_[a] + tok.tokens_[b], (int32_t)tok.tokens_.size());
    int32_t ab = slot->second;
    if (is_new) tok.tokens_.push_back(slot->first);
    tok.merges_.emplace_back(a, b);

    std::vector<int32_t> candidates = std::move(words_with[best.pair]);
    words_with.erase(best.pair);
    std::vector<uint64_t> new_pairs;
    for (int32_t w : candidates) {
      if (visited[w] == m) continue;
      visited[w] = m;
      std::vector<int32_t>& s = words[w].syms;
      merged.clear();
      for (size_t k = 0; k < s.size(); k++) {
        if (k + 1 < s.size() && s[k] == a && s[k + 1] == b) merged.push_back(ab), k++;
        else merged.push_back(s[k]);
      }
      if (merged.size() == s.size()) continue;  // stale index entry
      add_pairs(s, -words[w].count);
      add_pairs(merged, words[w].count);
      for (size_t k = 0; k + 1 < merged.size(); k++)
        if (merged[k] == ab || merged[k + 1] == ab) {
          uint64_t p = key_of(merged[k], merged[k + 1]);
          words_with[p].push_back(w);
          new_pairs.push_back(p);
        }
      s.swap(merged);
    }
    std::sort(new_pairs.begin(), new_pairs.end());
    new_pairs.erase(std::unique(new_pairs.begin(), new_pairs.end()), new_pairs.end());
    for (uint64_t p : new_pairs) {
      auto it = pair_count.find(p);
      if (it != pair_count.end()) heap.push({it->second, p});
    }
  }

  tok.eot_ = (int32_t)tok.tokens_.size();
  tok.tokens_.push_back("<|endoftext|>");
  tok.index("trained tokenizer");
  return tok;
}

}  // namespace switchlora
