#include "data/pretokenize.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "gpt2_reference.h"

using namespace switchlora;

TEST_CASE("pieces equal the JS regex of gpt-3-encoder on random mixed-script text") {
  Rng rng{20240801, 21, 0};
  std::string text = "I'm he's 'S ''x''  a\t\tb\r\n\n  \n end   \xC2\xA0\xC2\xA0x \xE3\x80\x80y 12ab3 ?!x ;; " +
                     test::random_text(rng, 6000) + "  ";
  std::vector<std::string> ours;
  for (auto p : pretokenize(text)) ours.emplace_back(p);
  auto ref = nlohmann::json::parse(test::gpt2_reference("split", text)).get<std::vector<std::string>>();
  size_t i = 0;
  while (i < ours.size() && i < ref.size() && ours[i] == ref[i]) i++;
  INFO(ours.size(), " pieces (ours), ", ref.size(), " (reference); first difference at piece ", i, ": ours \"",
       i < ours.size() ? ours[i] : "<end>", "\", reference \"", i < ref.size() ? ref[i] : "<end>", "\"");
  CHECK(ours == ref);
}

TEST_CASE("pieces are non-empty and concatenate back to any byte string") {
  Rng rng{9, 22, 0};
  for (int trial = 0; trial < 500; trial++) {
    std::string s(rng.below(64), '\0');
    for (char& c : s) c = (char)(rng.below(2) ? " \t\n'sa1\xC3\xA9"[rng.below(10)] : (char)rng.below(256));
    std::string joined;
    for (auto p : pretokenize(s)) {
      REQUIRE(!p.empty());
      joined += p;
    }
    INFO("trial ", trial, ", ", s.size(), " bytes");
    REQUIRE(joined == s);
  }
}
