#include "data/data_vocab.h"

#include <climits>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "data/file_io.h"
#include "data/tokenizer.h"
#include "engine/error.h"

namespace switchlora {

DataVocab data_vocab(const std::string& dir) {
  const std::string meta = dir + "/" + kMetaFile;
  if (!std::filesystem::exists(meta)) {
    const Tokenizer tok = Tokenizer::load(dir);
    return {"bpe", tok.vocab_size(), tok.eot_token()};
  }
  const nlohmann::json j = nlohmann::json::parse(read_file(meta), nullptr, false);
  if (!j.is_object()) throw Error(meta + " is not a JSON object");
  auto field = [&](const char* name) -> const nlohmann::json& {
    if (!j.contains(name)) throw Error(meta + ": no field \"" + name + "\"");
    return j[name];
  };
  const nlohmann::json &kind = field("tokenizer"), &size = field("vocab_size"), &eot = field("eot_token");
  if (!kind.is_string()) throw Error(meta + ": \"tokenizer\" is not a string");
  if (!size.is_number_integer() || size.get<int64_t>() < 1 || size.get<int64_t>() > INT32_MAX)
    throw Error(meta + ": \"vocab_size\" " + size.dump() + " is not a positive 32-bit integer");
  if (!eot.is_number_integer() || eot.get<int64_t>() < 0 || eot.get<int64_t>() >= size.get<int64_t>())
    throw Error(meta + ": \"eot_token\" " + eot.dump() + " is not an id below vocab_size " + size.dump());
  return {kind.get<std::string>(), size.get<int>(), eot.get<int32_t>()};
}

}  // namespace switchlora
