#include "data/english.h"

#include <algorithm>
#include <filesystem>
#include <regex>
#include <sstream>

#include "engine/error.h"

namespace switchlora {

std::vector<std::string> sotu_files(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  static const std::regex kAddress("[0-9]{4}_[a-z_]+\\.txt");
  for (auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && std::regex_match(name, kAddress)) names.push_back(name);
  }
  if (ec) throw Error("cannot list the State of the Union directory " + dir + ": " + ec.message());
  if (names.empty()) throw Error("no State of the Union addresses (files <year>_<name>.txt) in " + dir);
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> moby_dick_files(const std::string& dir) {
  std::vector<std::string> names = {"etymology.txt", "extracts.txt"};
  for (int c = 1; c <= 135; c++) names.push_back("chapter_" + std::to_string(c) + ".txt");
  names.push_back("epilogue.txt");
  for (auto& n : names)
    if (!std::filesystem::is_regular_file(dir + "/" + n))
      throw Error("Moby-Dick's " + n + " is missing from " + dir + " (tools/fetch_npm.sh english installs it)");
  return names;
}

std::string drop_blank_lines(const std::string& text) {
  std::istringstream lines(text);
  std::string out;
  for (std::string line; std::getline(lines, line);) {
    line.erase(line.find_last_not_of(" \t\r\f\v") + 1);  // npos + 1 == 0: a blank line empties
    if (line.empty()) continue;
    if (!out.empty()) out += '\n';
    out += line;
  }
  return out;
}

}  // namespace switchlora
