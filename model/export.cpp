#include "model/export.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "data/data_tokenizer.h"
#include "data/file_io.h"
#include "engine/error.h"
#include "model/lora.h"

namespace switchlora {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

namespace fs = std::filesystem;

namespace {

float half_to_float(uint16_t h) {
  const int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float v;
  if (exp == 0) v = std::ldexp((float)mant, -24);  // zero or subnormal: mant * 2^-24
  else if (exp == 31) v = mant ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  else v = std::ldexp((float)(mant | 0x400), exp - 25);  // (1024 + mant) * 2^(exp - 15 - 10)
  return (h & 0x8000) ? -v : v;
}

// Norm gains are 1-D in HF's files; every other parameter is a matrix, even
// a rank-1 adapter (1, in).
bool is_vector(const Param& p) { return p.name.ends_with("norm.weight"); }

std::vector<int64_t> shape_of(const Param& p) {
  return is_vector(p) ? std::vector<int64_t>{p.cols} : std::vector<int64_t>{p.rows, p.cols};
}

// A parameter's values, copied from the backend to the host.
NamedTensor tensor_of(const ParamStore& ps, const Param& p) { return {p.name, shape_of(p), ps.get(p)}; }

// The element count of a shape, or -1 when it exceeds 2^62 (so a hostile
// shape can neither overflow nor pass a size check by wrapping around).
int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || (d > 0 && n > (INT64_C(1) << 62) / d)) return -1;
    n *= d;
  }
  return n;
}

}  // namespace

void save_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const TensorMetadata& metadata) {
  nlohmann::json header = nlohmann::json::object();
  size_t offset = 0;
  for (const NamedTensor& t : tensors) {
    SL_CHECK(numel(t.shape) == (int64_t)t.data.size(), "tensor " + t.name + ": shape does not match its data");
    const size_t bytes = t.data.size() * sizeof(float);
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // 8 + N is then a multiple of 8
  const uint64_t n = text.size();
  std::string out(reinterpret_cast<const char*>(&n), 8);
  out.reserve(8 + text.size() + offset);
  out += text;
  for (const NamedTensor& t : tensors)
    out.append(reinterpret_cast<const char*>(t.data.data()), t.data.size() * sizeof(float));
  write_file_atomic(path, out);
}

std::vector<NamedTensor> load_safetensors(const std::string& path, TensorMetadata* metadata) {
  const std::string blob = read_file(path);
  uint64_t n = 0;
  if (blob.size() < 8) throw Error(path + ": too short for a safetensors file (" + std::to_string(blob.size()) + " bytes)");
  std::memcpy(&n, blob.data(), 8);
  if (n > blob.size() - 8)
    throw Error(path + ": safetensors header length " + std::to_string(n) + " runs past the end of the file");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(blob.begin() + 8, blob.begin() + 8 + (int64_t)n);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": safetensors header is not valid JSON: " + e.what());
  }
  if (!header.is_object()) throw Error(path + ": safetensors header is not a JSON object");
  const char* data = blob.data() + 8 + n;
  const uint64_t data_bytes = blob.size() - 8 - n;

  std::vector<std::pair<uint64_t, NamedTensor>> found;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      if (metadata)
        for (const auto& [k, v] : info.items()) (*metadata)[k] = v.is_string() ? v.get<std::string>() : v.dump();
      continue;
    }
    const std::string where = path + ": tensor " + name;
    NamedTensor t;
    t.name = name;
    std::string dtype;
    uint64_t begin = 0, end = 0;
    try {
      dtype = info.at("dtype").get<std::string>();
      t.shape = info.at("shape").get<std::vector<int64_t>>();
      begin = info.at("data_offsets").at(0).get<uint64_t>();
      end = info.at("data_offsets").at(1).get<uint64_t>();
    } catch (const nlohmann::json::exception& e) {
      throw Error(where + ": bad header entry " + info.dump() + " (" + e.what() + ")");
    }
    for (int64_t d : t.shape)
      if (d < 0) throw Error(where + ": negative dimension in shape " + info.at("shape").dump());
    const size_t size = dtype == "F64" ? 8 : dtype == "F32" ? 4 : (dtype == "F16" || dtype == "BF16") ? 2 : 0;
    if (size == 0) throw Error(where + ": dtype \"" + dtype + "\" is not one of F32, F16, BF16, F64");
    if (begin > end || end > data_bytes)
      throw Error(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                  "] outside the " + std::to_string(data_bytes) + " data bytes");
    const int64_t count = numel(t.shape);
    if (count < 0 || (uint64_t)count > (end - begin) / size || end - begin != (uint64_t)count * size)
      throw Error(where + ": " + std::to_string(end - begin) + " bytes for shape " + info.at("shape").dump() +
                  " of " + dtype);
    t.data.resize(count);
    const char* p = data + begin;
    for (int64_t i = 0; i < count; i++) {
      if (size == 4) {
        std::memcpy(&t.data[i], p + 4 * i, 4);
      } else if (size == 8) {
        double d;
        std::memcpy(&d, p + 8 * i, 8);
        t.data[i] = (float)d;
      } else {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        t.data[i] = dtype == "BF16" ? std::bit_cast<float>((uint32_t)h << 16) : half_to_float(h);
      }
    }
    found.emplace_back(begin, std::move(t));
  }
  // The file's data order, which is the order the writer chose.
  std::stable_sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<NamedTensor> out;
  for (auto& [begin, t] : found) out.push_back(std::move(t));
  return out;
}

std::vector<NamedTensor> model_tensors(const Llama& model) {
  std::vector<NamedTensor> out;
  for (const Param& p : model.params.params) out.push_back(tensor_of(model.params, p));
  return out;
}

std::vector<NamedTensor> merged_tensors(const Llama& model) {
  std::map<std::string, const Linear*> adapted;  // by weight name
  for (const Linear* l : model.linears())
    if (l->r > 0) adapted[l->W->name] = l;
  std::vector<NamedTensor> out;
  for (const Param& p : model.params.params) {
    if (is_adapter(p.name)) continue;
    NamedTensor t = tensor_of(model.params, p);
    auto it = adapted.find(p.name);
    if (it != adapted.end()) {
      // W + s B A, merged into a copy: the model keeps its own W.
      Buffer<float> W(model.be, p.numel());
      model.be.copy(W.data(), p.data, p.numel() * sizeof(float));
      merge_adapter(model.be, *it->second, +1.0f, W.data());
      model.be.copy_and_wait(t.data.data(), W.data(), p.numel() * sizeof(float));
    }
    out.push_back(std::move(t));
  }
  return out;
}

bool is_export_dir(const std::string& path) {
  return fs::is_directory(path) && fs::is_regular_file(fs::path(path) / "model.safetensors") &&
         fs::is_regular_file(fs::path(path) / "config.json");
}

void export_model(const Llama& model, const std::string& data_dir, const std::string& out_dir) {
  fs::path out = fs::path(out_dir).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();  // "dir/" names dir
  if (out.empty()) throw Error("--out must name a directory, got \"" + out_dir + "\"");
  if (fs::exists(out) && !is_export_dir(out.string()) && !(fs::is_directory(out) && fs::is_empty(out)))
    throw Error("--out " + out.string() + " exists and is not an export (no model.safetensors + config.json); "
                "refusing to replace it");
  // Loaded, not just looked for: an export never carries a broken tokenizer.
  const std::vector<std::string> tokenizer_files = DataTokenizer::load(data_dir).files();

  const fs::path tmp = out.string() + ".tmp." + std::to_string(getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    save_safetensors((tmp / "model.safetensors").string(), merged_tensors(model),
                     {{"format", "pt"}, {"data", data_dir}});
    write_file_atomic((tmp / "config.json").string(), config_to_json(model.config) + "\n");
    for (const std::string& f : tokenizer_files)
      write_file_atomic((tmp / f).string(), read_file((fs::path(data_dir) / f).string()));
    // A reader sees the old export or the new one, whole: a fresh name is
    // one rename; an old export is swapped with the new one in one call
    // (Linux's RENAME_EXCHANGE), which leaves the old one under tmp.
    if (!fs::exists(out)) {
      fs::rename(tmp, out);
    } else if (renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, out.c_str(), RENAME_EXCHANGE) != 0) {
      throw Error("cannot swap " + tmp.string() + " with " + out.string() + ": " + std::strerror(errno));
    }
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  fs::remove_all(tmp);
}

std::unique_ptr<Llama> load_export(const std::string& dir, std::string* data_dir, Backend& be) {
  const std::string config_path = (fs::path(dir) / "config.json").string();
  const std::string weights_path = (fs::path(dir) / "model.safetensors").string();
  const LlamaConfig config = load_config(config_path);
  TensorMetadata meta;
  std::vector<NamedTensor> tensors = load_safetensors(weights_path, &meta);
  std::map<std::string, const NamedTensor*> by_name;
  for (const NamedTensor& t : tensors) by_name[t.name] = &t;
  auto model = std::make_unique<Llama>(config, LoraOptions{}, 0, be);
  for (Param& p : model->params.params) {
    auto it = by_name.find(p.name);
    if (it == by_name.end()) throw Error(weights_path + ": missing tensor " + p.name);
    const NamedTensor& t = *it->second;
    const std::vector<int64_t> want = shape_of(p);
    if (t.shape != want)
      throw Error(weights_path + ": tensor " + p.name + " has shape " + nlohmann::json(t.shape).dump() +
                  ", " + config_path + " needs " + nlohmann::json(want).dump());
    model->params.set(p, t.data);
  }
  if (data_dir) *data_dir = meta.count("data") ? meta["data"] : "";
  return model;
}

}  // namespace switchlora
