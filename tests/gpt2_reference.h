// Helpers shared by the tokenizer tests: the node reference encoder and
// random text that mixes ASCII, other scripts, numbers and whitespace.
#pragma once
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <unistd.h>

#include "data/file_io.h"
#include "engine/rng.h"

namespace switchlora::test {

// Runs tests/gpt2_reference.js (installing the npm packages first if the
// cache is missing) and returns its stdout; throws when it cannot.
inline std::string gpt2_reference(const std::string& mode, const std::string& text) {
  if (!std::filesystem::exists("data/cache/node_modules/gpt-3-encoder/Encoder.js") &&
      std::system("tools/fetch_npm.sh") != 0)
    throw std::runtime_error("tools/fetch_npm.sh failed: cannot install gpt-3-encoder for the reference");
  std::string in = std::filesystem::temp_directory_path() / ("gpt2_ref_" + std::to_string(getpid()) + ".txt");
  write_file_atomic(in, text);
  std::string cmd = "node tests/gpt2_reference.js " + mode + " " + in;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run: " + cmd);
  std::string out;
  char buf[65536];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  int rc = pclose(p);
  std::filesystem::remove(in);
  if (rc != 0) throw std::runtime_error(cmd + " exited with status " + std::to_string(rc));
  return out;
}

inline void append_utf8(std::string& s, uint32_t cp) {
  if (cp < 0x80) s += (char)cp;
  else if (cp < 0x800) s += (char)(0xC0 | cp >> 6), s += (char)(0x80 | (cp & 0x3F));
  else if (cp < 0x10000)
    s += (char)(0xE0 | cp >> 12), s += (char)(0x80 | ((cp >> 6) & 0x3F)), s += (char)(0x80 | (cp & 0x3F));
  else
    s += (char)(0xF0 | cp >> 18), s += (char)(0x80 | ((cp >> 12) & 0x3F)), s += (char)(0x80 | ((cp >> 6) & 0x3F)),
        s += (char)(0x80 | (cp & 0x3F));
}

// Random valid UTF-8: runs of characters from blocks whose letter and number
// classes have been stable for many Unicode versions (the reference's node
// and our table may differ in version), joined by random whitespace and
// punctuation, with contractions mixed in.
inline std::string random_text(Rng& rng, int runs) {
  static const uint32_t kBlocks[][2] = {
      {'a', 'z'},       {'A', 'Z'},       {'0', '9'},       {0xC0, 0x24F},    {0x391, 0x3C9},
      {0x410, 0x44F},   {0x5D0, 0x5EA},   {0x621, 0x64A},   {0x660, 0x669},   {0x905, 0x939},
      {0x966, 0x96F},   {0xE01, 0xE30},   {0x3041, 0x3096}, {0x4E00, 0x9FA5}, {0xAC00, 0xD7A3},
      {0x2160, 0x2188}, {0xB2, 0xBE},     {0x1F600, 0x1F64F}, {0x2010, 0x2027}, {0x21, 0x2F},
      {0x3A, 0x40},     {0xFF01, 0xFF5E}, {0x300, 0x36F},   {0x1D400, 0x1D7FF}};
  static const char* kGlue[] = {" ", " ", " ", "  ", "\n", "\n\n", "\t", " \t ", "\r\n", "   \n ", "'s", "'ll",
                                "'re", "'ve", "'m", "'d", "'t", "'S", "''", "\xC2\xA0", "\xE3\x80\x80",
                                "\xE2\x80\xA8", "\xEF\xBB\xBF", " \xC2\xA0 "};
  std::string s;
  for (int r = 0; r < runs; r++) {
    const uint32_t* block = kBlocks[rng.below(std::size(kBlocks))];
    int len = 1 + (int)rng.below(8);
    for (int i = 0; i < len; i++) append_utf8(s, block[0] + (uint32_t)rng.below(block[1] - block[0] + 1));
    s += kGlue[rng.below(std::size(kGlue))];
  }
  return s;
}

}  // namespace switchlora::test
