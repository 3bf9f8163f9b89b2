#include "data/brown.h"

#include <algorithm>
#include <filesystem>
#include <regex>
#include <sstream>

#include "engine/error.h"

namespace switchlora {

std::vector<std::string> brown_files(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  static const std::regex kTextName("c[a-r][0-9][0-9]");
  for (auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && std::regex_match(name, kTextName)) names.push_back(name);
  }
  if (ec) throw Error("cannot list the Brown corpus directory " + dir + ": " + ec.message());
  if (names.empty()) throw Error("no Brown corpus texts (files c[a-r][0-9][0-9]) in " + dir);
  std::sort(names.begin(), names.end());
  return names;
}

std::string brown_detag(const std::string& tagged) {
  static const std::vector<std::string> kNoSpaceBefore = {",", ".", ";", ":", "?", "!", ")", "]", "''", "'"};
  static const std::vector<std::string> kNoSpaceAfter = {"``", "(", "["};
  auto in = [](const std::vector<std::string>& set, const std::string& w) {
    return std::find(set.begin(), set.end(), w) != set.end();
  };
  std::string text, paragraph;
  bool glue_next = true;  // no space before the next word
  auto end_paragraph = [&] {
    if (paragraph.empty()) return;
    if (!text.empty()) text += '\n';
    text += paragraph;
    paragraph.clear();
    glue_next = true;
  };
  std::istringstream lines(tagged);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream tokens(line);
    std::vector<std::pair<std::string, std::string>> words;  // (word, tag)
    for (std::string token; tokens >> token;) {
      size_t slash = token.rfind('/');
      if (slash == std::string::npos || slash == 0) words.emplace_back(token, "");
      else words.emplace_back(token.substr(0, slash), token.substr(slash + 1));
    }
    if (words.empty()) {
      end_paragraph();
      continue;
    }
    // A line whose every tag ends in -hl is a headline: a paragraph of its own.
    bool headline = std::all_of(words.begin(), words.end(), [](auto& w) { return w.second.ends_with("-hl"); });
    if (headline) end_paragraph();
    for (auto& [tagged_word, tag] : words) {
      std::string word = tagged_word;
      // "Jr./np ./." would read "Jr.." : the sentence's period is already there.
      if (word == "." && !paragraph.empty() && paragraph.back() == '.') continue;
      bool glue = glue_next || in(kNoSpaceBefore, word);
      glue_next = in(kNoSpaceAfter, word);
      if (word == "``" || word == "''") word = "\"";
      if (!glue) paragraph += ' ';
      paragraph += word;
    }
    if (headline) end_paragraph();
  }
  end_paragraph();
  return text;
}

}  // namespace switchlora
