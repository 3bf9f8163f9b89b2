// docs/TOUR.md stays true: every link to a repository file points at a file
// that exists, and every link whose text names a function or type
// ([`Trainer::train_step`](../train/trainer.cpp)) names one defined or
// declared in that file.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

namespace {

std::string read_all(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Does `file` define, declare or call `name`? "A::b" must appear as "A::b(";
// a plain lowercase name as "name(" (or "name =" for a constant); a type
// (Capitalised, no ::) as "class Name" or "struct Name"; a constructor
// "A::A" as "A::A(".
bool names(const std::string& file, const std::string& name) {
  if (name.find("::") != std::string::npos) return file.find(name + "(") != std::string::npos;
  if (std::isupper((unsigned char)name[0]))
    return file.find("class " + name) != std::string::npos || file.find("struct " + name) != std::string::npos;
  return std::regex_search(file, std::regex("\\b" + name + "\\("));
}

}  // namespace

TEST_CASE("docs/TOUR.md names only files and functions that exist") {
  const std::string tour = read_all("docs/TOUR.md");
  REQUIRE(tour.size() > 1000);
  const std::regex link(R"(\[`([^`\]]+)`\]\(\.\./([^)#]+)\))");
  int files = 0, functions = 0;
  for (auto it = std::sregex_iterator(tour.begin(), tour.end(), link); it != std::sregex_iterator(); ++it) {
    const std::string text = (*it)[1], target = (*it)[2];
    INFO("[`" << text << "`](../" << target << ")");
    REQUIRE(std::filesystem::exists(target));
    files++;
    // File names as link text: the link's own file (or its last component).
    if (text.find('/') != std::string::npos || text.find('.') != std::string::npos) {
      CHECK(target.ends_with(text));
      continue;
    }
    CHECK(names(read_all(target), text));
    functions++;
  }
  MESSAGE("TOUR.md: " << files << " links, " << functions << " functions and types, all found");
  CHECK(functions >= 40);
}
