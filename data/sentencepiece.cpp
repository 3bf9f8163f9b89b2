#include "data/sentencepiece.h"

#include "data/file_io.h"
#include "engine/error.h"

#if SWITCHLORA_JSONL
#include <sentencepiece_processor.h>

namespace switchlora {

struct SentencePiece::Impl {
  sentencepiece::SentencePieceProcessor sp;
};

bool have_sentencepiece() { return true; }

SentencePiece SentencePiece::load(const std::string& path, const std::string& flag) {
  SentencePiece s;
  try {
    s.bytes_ = read_file(path);
  } catch (const Error& e) {
    throw Error(flag + " " + path + ": cannot read the SentencePiece model (" + e.what() + ")");
  }
  s.impl_ = std::make_unique<Impl>();
  const auto status = s.impl_->sp.LoadFromSerializedProto(s.bytes_);
  if (!status.ok())
    throw Error(flag + " " + path + " is not a SentencePiece model: " + status.ToString());
  return s;
}

SentencePiece SentencePiece::clone() const {
  SentencePiece s;
  s.bytes_ = bytes_;
  s.impl_ = std::make_unique<Impl>();
  const auto status = s.impl_->sp.LoadFromSerializedProto(s.bytes_);
  SL_CHECK(status.ok(), "reloading a SentencePiece model: " + status.ToString());
  return s;
}

std::vector<int32_t> SentencePiece::encode(const std::string& text) const {
  std::vector<int> ids;
  const auto status = impl_->sp.Encode(text, &ids);
  if (!status.ok()) throw Error("SentencePiece cannot encode a text: " + status.ToString());
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::string SentencePiece::decode(const std::vector<int32_t>& ids) const {
  std::vector<int> known(ids.begin(), ids.end());
  for (int& id : known)
    if (id < 0 || id >= vocab_size()) id = impl_->sp.unk_id();
  std::string text;
  const auto status = impl_->sp.Decode(known, &text);
  if (!status.ok()) throw Error("SentencePiece cannot decode ids: " + status.ToString());
  return text;
}

int SentencePiece::vocab_size() const { return impl_->sp.GetPieceSize(); }
int32_t SentencePiece::eos_id() const { return impl_->sp.eos_id(); }

SentencePiece::SentencePiece(SentencePiece&&) noexcept = default;
SentencePiece::~SentencePiece() = default;

}  // namespace switchlora

#else  // built without libsentencepiece (CMakeLists.txt)

namespace switchlora {

struct SentencePiece::Impl {};

bool have_sentencepiece() { return false; }

SentencePiece SentencePiece::load(const std::string& path, const std::string& flag) {
  throw Error(flag + " " + path + ": this build has no SentencePiece (install libsentencepiece-dev and zlib1g-dev, "
              "then rebuild)");
}
SentencePiece SentencePiece::clone() const { return load("", ""); }
std::vector<int32_t> SentencePiece::encode(const std::string&) const { return {}; }
std::string SentencePiece::decode(const std::vector<int32_t>&) const { return {}; }
int SentencePiece::vocab_size() const { return 0; }
int32_t SentencePiece::eos_id() const { return -1; }
SentencePiece::SentencePiece(SentencePiece&&) noexcept = default;
SentencePiece::~SentencePiece() = default;

}  // namespace switchlora

#endif
