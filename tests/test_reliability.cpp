// What a long run meets (issue: reliability): a learning rate that blows the
// model up, two runs on one --save_dir, temporaries left by a killed run,
// and checkpoints edited by hand. Each ends in a one-line error naming the
// file, flag or field, and nothing good on disk is lost.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>

#include "dist_cli.h"
#include "model/checkpoint.h"
#include "train/run_lock.h"
#include "train/trainer.h"

using namespace switchlora;

namespace {

std::string train_cmd(const std::string& data, const std::string& dir, const std::string& flags) {
  return test::bin() + " train --model_config configs/llama_tiny.json --data " + data + " --save_dir " + dir +
         " --batch_size 2 --max_length 16 --eval_every 0 --max_eval_batches 1 " + flags;
}

// The one line `switchlora: error: ...` of a failed command.
std::string error_line(const std::string& output) {
  std::smatch m;
  return std::regex_search(output, m, std::regex("switchlora: error: [^\n]*")) ? m[0].str() : "";
}

}  // namespace

TEST_CASE("--lr 1e30: non-finite steps are skipped, the run stops past 5%, the newest checkpoint is finite") {
  const std::string data = test::make_tiny_data("nonfinite");
  const std::string dir = data + "/run";
  const auto r = test::run_command(train_cmd(data, dir, "--lr 1e30 --num_training_steps 40 --save_every 1 --keep_checkpoints 3"));
  INFO(r.output);
  CHECK(r.status == 2);
  const std::string e = error_line(r.output);
  CHECK(e.find("more than 5% of the 40 steps (3) had a non-finite loss or gradient norm") != std::string::npos);
  CHECK(r.output.find("NON-FINITE: switch and update skipped (1 so far)") != std::string::npos);
  // Every checkpoint left is finite and loads; the one the message names is the newest.
  std::smatch m;
  REQUIRE(std::regex_search(e, m, std::regex("newest finite checkpoint: (\\S+)")));
  const std::string named = m[1];
  CHECK(named == resolve_checkpoint(dir));
  int kept = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir))
    if (f.path().filename().string().starts_with("checkpoint_")) {
      const Checkpoint ck = load_checkpoint(f.path().string());
      const std::unique_ptr<Llama> model = model_from_checkpoint(ck, f.path().string());
      for (const Param& p : model->params.params) CHECK(ck.finite(p.name));
      kept++;
    }
  CHECK(kept >= 1);
  // metrics.jsonl marks the skipped steps.
  std::ifstream metrics(dir + "/metrics.jsonl");
  int skipped = 0;
  for (std::string line; std::getline(metrics, line);) skipped += line.find("\"skipped\":1") != std::string::npos;
  CHECK(skipped == 3);

  const auto strict = test::run_command(train_cmd(data, data + "/strict", "--lr 1e30 --num_training_steps 40 --error_if_nonfinite"));
  INFO(strict.output);
  CHECK(strict.status == 2);
  CHECK(error_line(strict.output).find("step 2 had a non-finite loss") != std::string::npos);
  CHECK(error_line(strict.output).find("(--error_if_nonfinite)") != std::string::npos);
  std::filesystem::remove_all(data);
}

TEST_CASE("one run per --save_dir: a second refuses naming the first; a killed run's temporaries are removed") {
  const std::string data = test::make_tiny_data("lock");
  const std::string dir = data + "/run";
  std::filesystem::create_directories(dir);
  {
    const RunLock held(dir);  // this test process plays the first run
    const auto r = test::run_command(train_cmd(data, dir, "--num_training_steps 2"));
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK(error_line(r.output).find("--save_dir " + dir + " is in use by another run (pid " +
                                    std::to_string(getpid())) != std::string::npos);
    CHECK(!std::filesystem::exists(dir + "/metrics.jsonl"));  // it touched nothing
  }
  // The lock is gone with its holder; a run leaves temporaries when killed mid-write.
  const auto first = test::run_command(train_cmd(data, dir, "--num_training_steps 4 --save_every 2"));
  REQUIRE(first.status == 0);
  std::ofstream(dir + "/checkpoint_00000006.bin.tmp.99999") << "half a checkpoint";
  const auto again = test::run_command(train_cmd(data, dir, "--num_training_steps 8 --save_every 2 --autoresume"));
  INFO(again.output);
  CHECK(again.status == 2);  // --num_training_steps differs: refused, yet the temporary is gone
  CHECK(again.output.find("removed 1 temporary file(s)") != std::string::npos);
  CHECK(!std::filesystem::exists(dir + "/checkpoint_00000006.bin.tmp.99999"));
  std::filesystem::remove_all(data);
}

TEST_CASE("an edited checkpoint is a one-line error naming the file and the field, never a crash") {
  const std::string data = test::make_tiny_data("edited");
  const std::string dir = data + "/run";
  const std::string flags = "--switch_lora --lora_rank 8 --num_training_steps 4 --save_every 2";
  REQUIRE(test::run_command(train_cmd(data, dir, flags)).status == 0);
  const std::string path = dir + "/checkpoint_00000002.bin";
  const Checkpoint good = load_checkpoint(path);

  // A hostile edit that keeps the checksum valid (the file is re-saved), then --resume.
  auto resume_with = [&](const std::function<void(Checkpoint&)>& edit, const std::string& message) {
    Checkpoint ck = good;
    edit(ck);
    const std::string edited = data + "/edited.bin";
    save_checkpoint(edited, ck);
    const auto r = test::run_command(train_cmd(data, data + "/resumed", flags + " --resume " + edited));
    INFO(message << "\n" << r.output);
    CHECK(r.status == 2);
    const std::string e = error_line(r.output);
    CHECK(e.find(edited) != std::string::npos);
    CHECK(e.find(message) != std::string::npos);
  };
  nlohmann::json* layer0 = nullptr;
  auto sw = [&](Checkpoint& ck) -> nlohmann::json& { return (layer0 = &ck.meta["switchlora"]["layers"][0], *layer0); };
  resume_with([&](Checkpoint& ck) { sw(ck)["held_A"][0] = 1000000; }, "held_A holds 1000000, outside [0, 63]");
  resume_with([&](Checkpoint& ck) { sw(ck)["held_B"][3] = -1; }, "held_B holds -1");
  resume_with([&](Checkpoint& ck) { sw(ck)["cursor_A"] = 8; }, "cursor_A must be an integer in [0, r = 8)");
  resume_with([&](Checkpoint& ck) { sw(ck)["frozen_B"][0] = 99; }, "frozen_B holds 99, outside [0, 5]");
  resume_with([&](Checkpoint& ck) { sw(ck)["frozen_A"] = {1, 2}; }, "frozen_A must be a list of r = 8 integers");
  resume_with([&](Checkpoint& ck) { ck.meta["switchlora"]["layers"] = nlohmann::json::array(); }, "0 layers");
  resume_with([&](Checkpoint& ck) { ck.meta["step"] = -5; }, "checkpoint step -5 is outside");
  resume_with([&](Checkpoint& ck) { ck.meta["step"] = "two"; }, "checkpoint step \"two\" is outside");
  resume_with([&](Checkpoint& ck) { ck.meta["data_position"] = -1; }, "data_position -1 is not a count");
  resume_with([&](Checkpoint& ck) { ck.meta["skipped_steps"] = 7; }, "skipped_steps 7 is outside [0, step = 2]");
  resume_with(
      [&](Checkpoint& ck) {
        std::vector<char>& v = ck.blobs["optimizer.lm_head.weight.exp_avg_sq"];
        const float minus = -1.0f;
        std::memcpy(v.data(), &minus, sizeof minus);
      },
      "optimizer state of 'lm_head.weight' entry 0 is invalid");

  // An edit that leaves the checksum stale: caught before anything is parsed into the model.
  std::string bytes;
  {
    std::ifstream f(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(f), {});
  }
  const size_t at = bytes.find("\"cursor_A\":");
  REQUIRE(at != std::string::npos);
  bytes[at + 11] = bytes[at + 11] == '1' ? '2' : '1';
  std::ofstream(data + "/stale.bin", std::ios::binary) << bytes;
  CHECK_THROWS_WITH_AS(load_checkpoint(data + "/stale.bin"), doctest::Contains("checksum mismatch"), Error);
  // A blob that claims more bytes than the file holds (the header rewritten
  // with its length, so only the claim is wrong): an error, not a huge allocation.
  uint64_t hlen = 0;
  std::memcpy(&hlen, bytes.data() + 16, 8);
  nlohmann::json header = nlohmann::json::parse(bytes.substr(32, hlen));
  header["blobs"][0]["bytes"] = 1ull << 39;
  const std::string h = header.dump();
  const uint64_t new_len = h.size();
  std::string lying = bytes.substr(0, 32) + h + bytes.substr(32 + hlen);
  std::memcpy(lying.data() + 16, &new_len, 8);
  std::ofstream(data + "/lying.bin", std::ios::binary) << lying;
  CHECK_THROWS_WITH_AS(load_checkpoint(data + "/lying.bin"), doctest::Contains("claims 549755813888 bytes"), Error);
  std::filesystem::remove_all(data);
}

TEST_CASE("a config too big for the machine is an immediate error, before anything is allocated") {
  const std::string data = test::make_tiny_data("huge");
  const std::string config = data + "/huge.json";
  std::ofstream(config) << R"({"hidden_size": 64, "intermediate_size": 176, "num_attention_heads": 4,
                               "num_hidden_layers": 1e9, "vocab_size": 300, "max_sequence_length": 64})";
  const auto r = test::run_command(test::bin() + " train --model_config " + config + " --data " + data +
                                       " --save_dir " + data + "/run --batch_size 2 --max_length 16",
                                   30);
  INFO(r.output);
  CHECK(r.status == 2);
  CHECK(error_line(r.output).find("this run needs") != std::string::npos);
  CHECK(r.seconds < 10);
  std::filesystem::remove_all(data);
}
