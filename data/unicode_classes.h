// Character classes of GPT-2's pre-tokeniser regex, over Unicode code points.
#pragma once
#include <cstdint>

namespace switchlora {

bool is_letter(uint32_t cp);  // \p{L}: general category Lu, Ll, Lt, Lm or Lo
bool is_number(uint32_t cp);  // \p{N}: general category Nd, Nl or No

// \s as JavaScript defines it (the reference encoder, gpt-3-encoder, is JS):
// tab, LF, VT, FF, CR, the Zs space separators, U+2028/U+2029 and U+FEFF.
inline bool is_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

}  // namespace switchlora
