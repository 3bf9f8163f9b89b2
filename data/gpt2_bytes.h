// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the
// other 68 bytes (controls, space, DEL, NBSP, soft hyphen) for U+0100 on, so
// every token is written as a string of visible characters. `order` is the
// order of GPT-2's first 256 token ids: the printable bytes, then the others.
#pragma once
#include <cstdint>

namespace switchlora {

struct Gpt2Bytes {
  uint32_t to_unicode[256];
  uint8_t order[256];
  Gpt2Bytes() {
    auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; };
    int n = 0, extra = 0;
    for (int b = 0; b < 256; b++)
      if (printable(b)) to_unicode[b] = b, order[n++] = (uint8_t)b;
    for (int b = 0; b < 256; b++)
      if (!printable(b)) to_unicode[b] = 256 + extra++, order[n++] = (uint8_t)b;
  }
};

inline const Gpt2Bytes kGpt2Bytes;

}  // namespace switchlora
