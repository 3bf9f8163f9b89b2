// GPT-2's pre-tokeniser: splits text into the pieces that BPE merges never
// cross. It is the regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// written out by hand over UTF-8 code points. Bytes that are not valid UTF-8
// count as one "other" character each (neither letter, number nor space), so
// any byte string splits into pieces that concatenate back to it.
#pragma once
#include <string_view>
#include <vector>

namespace switchlora {

std::vector<std::string_view> pretokenize(std::string_view text);

}  // namespace switchlora
