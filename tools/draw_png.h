// Figures: the engine stays C++, and matplotlib (Debian's python3-matplotlib)
// draws. A command gathers its numbers as JSON and runs one script of
// tools/ on them:  python3 tools/<script> DATA.json OUT.png
// The script writes OUT.png through a temporary file and a rename, so a
// failed plot never leaves a half-written PNG.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace switchlora {

// Runs tools/`script` (or $SWITCHLORA_TOOLS/`script`) with $SWITCHLORA_PYTHON
// (default /usr/bin/python3) on `data`; throws naming the flag `flag` and
// what is missing if it fails.
void draw_png(const std::string& script, const nlohmann::json& data, const std::string& out_png,
              const std::string& flag);

}  // namespace switchlora
