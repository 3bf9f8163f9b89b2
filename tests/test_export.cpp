// model/export.h and `switchlora export`: safetensors files bit for bit, the
// merged Hugging Face export read by the PyTorch reference, and eval / sample
// on an export.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <set>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "data/file_io.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "dist/communicator.h"
#include "engine/error.h"
#include "engine/rng.h"
#include "model/export.h"
#include "tests/reference/harness.h"
#include "tests/same_bits.h"
#include "tests/tiny_config.h"
#include "train/trainer.h"

using namespace switchlora;
namespace fs = std::filesystem;

namespace {

constexpr int kB = 2, kT = 16;

// Runs the CLI (SWITCHLORA_BIN) with stderr folded into the returned output.
std::string cli(const std::string& args, int* rc) {
  const char* bin = std::getenv("SWITCHLORA_BIN");
  REQUIRE_MESSAGE(bin != nullptr, "SWITCHLORA_BIN is not set (run the tests through ctest)");
  FILE* p = popen((std::string(bin) + " " + args + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = pclose(p);
  *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A short SwitchLoRA run saved as `switchlora train` saves it: a tokenizer
// and a validation shard in data/, a checkpoint whose meta records data/.
// Three steps at a high learning rate make A, B and W all differ from init.
struct Run {
  std::string dir, data, ckpt;
  SingleProcess comm;
  std::unique_ptr<Trainer> trainer;
  std::vector<int32_t> tokens;  // (kB, kT + 1), the batch the tests evaluate

  explicit Run(const std::string& name) : dir(test::fresh_dir(name)), data(dir + "/data"), ckpt(dir + "/ck.bin") {
    std::string text;
    for (int i = 0; i < 40; i++)
      text += "The jury said the city election was conducted well. Number " + std::to_string(i * 7) + " of it.\n";
    const Tokenizer tok = Tokenizer::train(text, 300);
    fs::create_directories(data);
    tok.save(data);
    const std::vector<int32_t> ids = tok.encode(text);
    write_shard(data + "/tiny_val_000.bin", ids);

    LlamaConfig c = test::small_config(32, 64, 4, 2, tok.vocab_size(), kT);
    c.initializer_range = 0.1f;
    TrainOptions o;
    o.batch_size = o.total_batch_size = kB;
    o.max_length = kT;
    o.lr = 3e-2f;
    o.num_training_steps = 3;
    o.lora = {true, 4, 2.0f, "switchlora"};
    o.method = "switchlora";
    o.sw.switch_lora_interval = 4;
    o.sw.adam_warm_step = 1;
    o.sw.num_training_steps = 3;
    trainer = std::make_unique<Trainer>(o, c, comm);
    tokens.assign(ids.begin(), ids.begin() + kB * (kT + 1));
    const auto batch = [&](int32_t* in, int32_t* tg) {
      for (int b = 0; b < kB; b++)
        for (int t = 0; t < kT; t++) {
          in[b * kT + t] = tokens[b * (kT + 1) + t];
          tg[b * kT + t] = tokens[b * (kT + 1) + t + 1];
        }
    };
    for (int s = 0; s < 3; s++) trainer->train_step(batch);
    Checkpoint ck;
    trainer->save_state(ck);
    ck.meta["data"] = data;
    save_checkpoint(ckpt, ck);
  }
  ~Run() { fs::remove_all(dir); }

  // Logits (kB, kT, V) of `model` on the test batch.
  std::vector<float> logits(Llama& model) const {
    std::vector<int32_t> in;
    for (int b = 0; b < kB; b++)
      for (int t = 0; t < kT; t++) in.push_back(tokens[b * (kT + 1) + t]);
    model.forward(in.data(), nullptr, kB, kT);
    return std::vector<float>(model.logits(), model.logits() + (size_t)kB * kT * model.config.vocab_size);
  }
};

}  // namespace

TEST_CASE("safetensors round trip keeps names, shapes, order, metadata and every bit; data 8-aligned") {
  const std::string dir = test::fresh_dir("st_roundtrip");
  Rng rng{5, 1, 0};
  std::vector<NamedTensor> ts = {{"z.matrix", {3, 5}, {}}, {"a.vector", {7}, {}}, {"m.scalar", {}, {}},
                                 {"empty", {0, 4}, {}}};
  for (NamedTensor& t : ts) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    for (int64_t i = 0; i < n; i++) t.data.push_back(rng.normal());
  }
  ts[0].data[0] = -0.0f;
  ts[0].data[1] = std::numeric_limits<float>::infinity();
  ts[0].data[2] = std::numeric_limits<float>::denorm_min();
  save_safetensors(dir + "/t.safetensors", ts, {{"format", "pt"}, {"data", "some/dir"}});

  TensorMetadata meta;
  const std::vector<NamedTensor> back = load_safetensors(dir + "/t.safetensors", &meta);
  REQUIRE(back.size() == ts.size());
  for (size_t i = 0; i < ts.size(); i++) {
    CHECK(back[i].name == ts[i].name);
    CHECK(back[i].shape == ts[i].shape);
    REQUIRE(back[i].data.size() == ts[i].data.size());
    CHECK(test::same_bits(back[i].data, ts[i].data));
  }
  CHECK(meta == TensorMetadata{{"format", "pt"}, {"data", "some/dir"}});
  const std::string blob = read_file(dir + "/t.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, blob.data(), 8);
  CHECK((8 + n) % 8 == 0);
  fs::remove_all(dir);
}

TEST_CASE("safetensors reader widens F16 (normal, subnormal, max), BF16 and F64") {
  const std::string dir = test::fresh_dir("st_dtypes");
  const nlohmann::json header = {
      {"h", {{"dtype", "F16"}, {"shape", {4}}, {"data_offsets", {0, 8}}}},
      {"b", {{"dtype", "BF16"}, {"shape", {2}}, {"data_offsets", {8, 12}}}},
      {"d", {{"dtype", "F64"}, {"shape", {1}}, {"data_offsets", {12, 20}}}}};
  const std::string h = header.dump();
  const uint64_t len = h.size();
  std::string blob(reinterpret_cast<const char*>(&len), 8);
  blob += h;
  // F16: 1.0, -2.0, 2^-24 (smallest subnormal), 65504 (largest normal); BF16: 1.0, -2.5
  const uint16_t halves[6] = {0x3C00, 0xC000, 0x0001, 0x7BFF, 0x3F80, 0xC020};
  blob.append(reinterpret_cast<const char*>(halves), sizeof halves);
  const double d = 0.1;
  blob.append(reinterpret_cast<const char*>(&d), 8);
  write_file_atomic(dir + "/d.safetensors", blob);

  const std::vector<NamedTensor> ts = load_safetensors(dir + "/d.safetensors");
  REQUIRE(ts.size() == 3);
  CHECK(ts[0].data == std::vector<float>{1.0f, -2.0f, std::ldexp(1.0f, -24), 65504.0f});
  CHECK(ts[1].data == std::vector<float>{1.0f, -2.5f});
  CHECK(ts[2].data == std::vector<float>{0.1f});
  fs::remove_all(dir);
}

TEST_CASE("safetensors errors name the file, the tensor and the bad value") {
  const std::string dir = test::fresh_dir("st_errors"), path = dir + "/e.safetensors";
  save_safetensors(path, {{"w", {2, 3}, std::vector<float>(6, 1.0f)}});
  const std::string good = read_file(path);

  write_file_atomic(path, good.substr(0, good.size() - 4));  // truncated data
  std::string e = error_of([&] { load_safetensors(path); });
  CHECK_MESSAGE((contains(e, path) && contains(e, "tensor w") && contains(e, "data_offsets")), e);

  write_file_atomic(path, good.substr(0, 6));
  e = error_of([&] { load_safetensors(path); });
  CHECK_MESSAGE((contains(e, path) && contains(e, "too short")), e);

  std::string bad_dtype = good;
  bad_dtype.replace(bad_dtype.find("F32"), 3, "I32");
  write_file_atomic(path, bad_dtype);
  e = error_of([&] { load_safetensors(path); });
  CHECK_MESSAGE((contains(e, "tensor w") && contains(e, "\"I32\"")), e);

  std::string bad_len = good;
  const uint64_t huge = 1ull << 40;
  std::memcpy(bad_len.data(), &huge, 8);
  write_file_atomic(path, bad_len);
  e = error_of([&] { load_safetensors(path); });
  CHECK_MESSAGE((contains(e, path) && contains(e, "runs past the end")), e);
  fs::remove_all(dir);
}

TEST_CASE("export merges the adapters into W; the PyTorch reference on the export gives the engine's logits") {
  test::require_torch();
  Run run("export_ref");
  const std::string out = run.dir + "/hf";
  int rc = 0;
  const std::string log = cli("export --checkpoint " + run.ckpt + " --out " + out, &rc);
  REQUIRE_MESSAGE(rc == 0, log);

  // The directory: exactly the four files, HF names, the run's tokenizer.
  std::set<std::string> files;
  for (const auto& f : fs::directory_iterator(out)) files.insert(f.path().filename().string());
  CHECK(files == std::set<std::string>{"config.json", "encoder.json", "model.safetensors", "vocab.bpe"});
  for (const auto& f : fs::directory_iterator(run.dir)) CHECK_MESSAGE(!contains(f.path().string(), ".tmp."), f.path());
  for (const char* f : {"encoder.json", "vocab.bpe"}) CHECK(read_file(out + "/" + f) == read_file(run.data + "/" + f));
  Trainer& tr = *run.trainer;
  CHECK(nlohmann::json::parse(read_file(out + "/config.json")) == nlohmann::json::parse(config_to_json(tr.model.config)));
  TensorMetadata meta;
  const std::vector<NamedTensor> exported = load_safetensors(out + "/model.safetensors", &meta);
  CHECK(meta.at("format") == "pt");
  CHECK(meta.at("data") == run.data);
  size_t n_weights = 0;
  for (const Param& p : tr.model.params.params) {
    if (p.name.ends_with("lora_A.weight") || p.name.ends_with("lora_B.weight")) continue;
    n_weights++;
    const NamedTensor* t = nullptr;
    for (const NamedTensor& x : exported)
      if (x.name == p.name) t = &x;
    REQUIRE_MESSAGE(t != nullptr, "export lacks " << p.name);
    // A frozen W must come out merged: W + s B A differs from W itself.
    if (!p.trainable) CHECK_MESSAGE(test::rel_err(t->data.data(), p.data, p.numel()) > 1e-2, p.name);
  }
  CHECK(exported.size() == n_weights);  // no adapters, nothing else

  // The reference reads the export as a plain full-rank LlamaForCausalLM.
  test::write_tokens(run.dir + "/tokens.bin", run.tokens, kB, kT);
  test::run_reference({"--config", out + "/config.json", "--weights", out + "/model.safetensors", "--tokens",
                       run.dir + "/tokens.bin", "--out", run.dir + "/out.bin"});
  const test::RefOut ref = test::read_ref_out(run.dir + "/out.bin");
  const std::vector<float> engine = run.logits(tr.model);
  // float64 reference vs the float32 engine (test_reference.cpp explains 1e-4).
  const double err = test::rel_err(engine, ref.logits);
  CHECK_MESSAGE(err <= 1e-4, "export vs engine logits error " << err);

  // The engine loads the export back: merging in float32 changes only the
  // rounding of W + s B A, a few 1e-7 relative.
  auto loaded = load_model(out);
  CHECK_FALSE(loaded->lora.use_lora);
  const double back = test::rel_err(run.logits(*loaded), engine);
  CHECK_MESSAGE(back <= 1e-5, "reloaded export vs engine logits error " << back);
  MESSAGE("export: logits error vs float64 reference " << err << ", reloaded in the engine " << back);
}

TEST_CASE("eval and sample accept an export directory and agree with the checkpoint") {
  Run run("export_cli");
  const std::string out = run.dir + "/hf";
  int rc = 0;
  std::string log = cli("export --checkpoint " + run.ckpt + " --out " + out, &rc);
  REQUIRE_MESSAGE(rc == 0, log);

  auto val_loss = [&](const std::string& path) {
    int code = 0;
    const std::string text = cli("eval --checkpoint " + path + " --batch_size 2 --max_length 16", &code);
    REQUIRE_MESSAGE(code == 0, text);
    float loss = 0;
    REQUIRE_MESSAGE(std::sscanf(text.c_str(), "val loss %f", &loss) == 1, text);
    return loss;
  };
  // Printed with 4 decimals: equal up to the last printed digit.
  const float from_ckpt = val_loss(run.ckpt), from_export = val_loss(out);
  CHECK(std::abs(from_ckpt - from_export) <= 1.5e-4f);

  auto sample = [&](const std::string& path) {
    int code = 0;
    const std::string text = cli("sample --checkpoint " + path + " --prompt 'The jury' --max_new_tokens 8 --temperature 0", &code);
    REQUIRE_MESSAGE(code == 0, text);
    return text;
  };
  const std::string a = sample(run.ckpt), b = sample(out);
  CHECK(a.starts_with("The jury"));
  CHECK(a == b);
}

TEST_CASE("export replaces an old export whole, refuses other directories, and needs a tokenizer") {
  Run run("export_errors");
  const std::string out = run.dir + "/hf";
  int rc = 0;
  std::string log = cli("export --checkpoint " + run.ckpt + " --out " + out, &rc);
  REQUIRE_MESSAGE(rc == 0, log);
  write_file_atomic(out + "/stale.txt", "from before");
  log = cli("export --checkpoint " + run.ckpt + " --out " + out + "/", &rc);
  CHECK_MESSAGE(rc == 0, log);
  CHECK_FALSE(fs::exists(out + "/stale.txt"));  // the whole directory was swapped
  CHECK(fs::exists(out + "/model.safetensors"));
  for (const auto& f : fs::directory_iterator(run.dir))
    CHECK_MESSAGE(!contains(f.path().string(), ".tmp."), f.path());

  const std::string other = run.dir + "/notes";
  fs::create_directories(other);
  write_file_atomic(other + "/keep.txt", "mine");
  log = cli("export --checkpoint " + run.ckpt + " --out " + other, &rc);
  CHECK(rc == 2);
  CHECK_MESSAGE(contains(log, "refusing"), log);
  CHECK(read_file(other + "/keep.txt") == "mine");

  Checkpoint ck = load_checkpoint(run.ckpt);
  ck.meta.erase("data");
  save_checkpoint(run.dir + "/nodata.bin", ck);
  log = cli("export --checkpoint " + run.dir + "/nodata.bin --out " + run.dir + "/x", &rc);
  CHECK(rc == 2);
  CHECK_MESSAGE(contains(log, "--data"), log);
  CHECK_FALSE(fs::exists(run.dir + "/x"));
  log = cli("export --checkpoint " + run.dir + "/nodata.bin --out " + run.dir + "/x --data " + run.dir, &rc);
  CHECK(rc == 2);
  CHECK_MESSAGE(contains(log, run.dir + "/encoder.json"), log);

  // An export whose config disagrees with its weights names the tensor and the config.
  nlohmann::json cfg = nlohmann::json::parse(read_file(out + "/config.json"));
  cfg["intermediate_size"] = 48;
  write_file_atomic(out + "/config.json", cfg.dump());
  const std::string e = error_of([&] { load_model(out); });
  CHECK_MESSAGE((contains(e, "mlp.gate_proj.weight") && contains(e, out + "/config.json")), e);
}
