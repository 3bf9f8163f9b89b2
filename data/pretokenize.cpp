#include "data/pretokenize.h"

#include <cstdint>

#include "data/unicode_classes.h"

namespace switchlora {
namespace {

enum class Class { kLetter, kNumber, kSpace, kOther };

struct CodePoint {
  Class cls;
  size_t len;  // bytes
};

// Decodes the UTF-8 code point at text[i]. Malformed sequences, overlong
// forms and surrogates are one byte of class kOther.
CodePoint next_code_point(std::string_view text, size_t i) {
  auto byte = [&](size_t k) { return (uint8_t)text[k]; };
  uint8_t b = byte(i);
  uint32_t cp = 0;
  size_t len = 1;
  if (b < 0x80) {
    cp = b;
  } else {
    uint32_t min;
    if ((b & 0xE0) == 0xC0) len = 2, cp = b & 0x1F, min = 0x80;
    else if ((b & 0xF0) == 0xE0) len = 3, cp = b & 0x0F, min = 0x800;
    else if ((b & 0xF8) == 0xF0) len = 4, cp = b & 0x07, min = 0x10000;
    else return {Class::kOther, 1};
    if (i + len > text.size()) return {Class::kOther, 1};
    for (size_t k = 1; k < len; k++) {
      if ((byte(i + k) & 0xC0) != 0x80) return {Class::kOther, 1};
      cp = (cp << 6) | (byte(i + k) & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {Class::kOther, 1};
  }
  Class cls = is_letter(cp) ? Class::kLetter
              : is_number(cp) ? Class::kNumber
              : is_space(cp)  ? Class::kSpace
                              : Class::kOther;
  return {cls, len};
}

// Length of the contraction ('s 't 're 've 'm 'll 'd) at text[i], or 0.
size_t contraction(std::string_view text, size_t i) {
  std::string_view rest = text.substr(i);
  for (std::string_view c : {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"})
    if (rest.starts_with(c)) return c.size();
  return 0;
}

}  // namespace

std::vector<std::string_view> pretokenize(std::string_view text) {
  std::vector<std::string_view> pieces;
  size_t n = text.size(), i = 0;
  while (i < n) {
    size_t len = contraction(text, i);
    if (len == 0) {
      // " ?X+" for X in letter, number, other: an optional leading space.
      size_t j = (text[i] == ' ' && i + 1 < n) ? i + 1 : i;
      CodePoint first = next_code_point(text, j);
      if (first.cls != Class::kSpace) {
        size_t k = j + first.len;
        while (k < n) {
          CodePoint c = next_code_point(text, k);
          if (c.cls != first.cls) break;
          k += c.len;
        }
        len = k - i;
      } else {
        // A whitespace run. \s+(?!\S) takes all of it at the end of the text,
        // otherwise all but its last character (which then leads the next
        // piece as " ?X+" or is a run of its own); a run of one character
        // before non-space falls through to \s+.
        size_t k = i, last = i;
        while (k < n) {
          CodePoint c = next_code_point(text, k);
          if (c.cls != Class::kSpace) break;
          last = k;
          k += c.len;
        }
        len = (k == n || last == i) ? k - i : last - i;
      }
    }
    pieces.push_back(text.substr(i, len));
    i += len;
  }
  return pieces;
}

}  // namespace switchlora
