// Data-parallel training through the CLI, under `mpirun -np 2` (issue 5):
// two ranks with batch b follow one rank with batch 2b, keep bitwise
// identical parameters, all-reduce only the trainable gradients, refuse to
// start when they disagree, and resume exactly.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "dist_cli.h"
#include "data/shard.h"
#include "model/checkpoint.h"

using namespace switchlora;

namespace {

const std::string& data_dir() {
  static const std::string dir = test::make_tiny_data("dist_data");
  return dir;
}

const char* kMethods[] = {"", " --use_lora --lora_rank 8",
                          " --switch_lora --lora_rank 8 --switch_lora_interval 4 --adam_warm_step 1",
                          " --use_lora --lora_rank 8 --relora 3",  // merges after updates 4 and 7
                          " --optimizer galore_adamw --rank 8 --update_proj_gap 3"};

std::string train_cmd(const std::string& flags, const std::string& save_dir) {
  return test::bin() + " train --model_config configs/llama_tiny.json --data " + data_dir() +
         " --max_length 32 --lr 3e-3 --warmup_steps 2 --num_training_steps 8 --eval_every 4"
         " --max_eval_batches 2 --seed 3 --save_dir " + save_dir + flags;
}

std::string fresh_dir(const std::string& name) {
  const std::string dir = data_dir() + "/" + name;
  std::filesystem::remove_all(dir);
  return dir;
}

// The training-step lines of a run's metrics.jsonl.
std::vector<nlohmann::json> steps(const std::string& save_dir) {
  std::vector<nlohmann::json> out;
  std::ifstream in(save_dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) out.push_back(j);
  }
  return out;
}

long long trainable_count(const std::string& output) {
  const auto at = output.find("trainable ");
  REQUIRE(at != std::string::npos);
  return std::stoll(output.substr(at + 10));
}

// The run directory's checkpoint of `step` (checkpoint_<step>.bin, however padded).
std::string checkpoint_at(const std::string& dir, int step) {
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("checkpoint_", 0) == 0 && name.size() > 15 && name.substr(name.size() - 4) == ".bin" &&
        std::stoi(name.substr(11, name.size() - 15)) == step)
      return e.path().string();
  }
  FAIL("no checkpoint of step ", step, " in ", dir);
  return "";
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
  return n;
}

}  // namespace

TEST_CASE("2 ranks with batch b follow 1 rank with batch 2b and all-reduce only the trainable gradients") {
  long long bytes[5] = {};
  for (int k = 0; k < 5; k++) {
    INFO("method:", kMethods[k]);
    const std::string d1 = fresh_dir("one_" + std::to_string(k)), d2 = fresh_dir("two_" + std::to_string(k));
    const auto one = test::run_command("env OMP_NUM_THREADS=1 " + train_cmd(kMethods[k] + std::string(" --batch_size 8"), d1));
    INFO(one.output);
    REQUIRE(one.status == 0);
    // --check_sync_every 1: every step, each rank's trainable, frozen and
    // candidate values are hashed and compared; any difference fails the run.
    const auto two = test::run_command(test::mpirun(2) + " " +
                                       train_cmd(kMethods[k] + std::string(" --batch_size 4 --check_sync_every 1"), d2));
    INFO(two.output);
    REQUIRE(two.status == 0);

    const auto s1 = steps(d1), s2 = steps(d2);
    REQUIRE(s1.size() == 8);
    REQUIRE(s2.size() == 8);
    const long long trainable = trainable_count(two.output);
    CHECK(trainable == trainable_count(one.output));
    int switched = 0, merged = 0;
    for (size_t i = 0; i < s1.size(); i++) {
      // Same sequences, same arithmetic up to float rounding: the 2-rank mean
      // of two half-batch means and the 1-rank mean differ in the last bits.
      const double l1 = s1[i]["loss"], l2 = s2[i]["loss"];
      CHECK_MESSAGE(std::fabs(l2 - l1) <= 1e-5 * std::fabs(l1), "step ", i + 1, ": ", l1, " vs ", l2);
      CHECK(s2[i]["allreduce_bytes"].get<long long>() == 4 * trainable);
      CHECK(s1[i]["allreduce_bytes"].get<long long>() == 0);
      switched += s2[i].value("switched", 0);
      merged += s2[i].value("relora_merged", 0);
    }
    if (k == 2) CHECK(switched > 0);
    if (k == 3) CHECK(merged == 2);
    bytes[k] = s2[0]["allreduce_bytes"];
    // Only rank 0 prints progress; the progress line carries the bytes.
    CHECK(count(two.output, "step     1/8") == 1);
    CHECK(count(two.output, "final validation loss") == 1);
    CHECK(two.output.find(" | allreduce ") != std::string::npos);
  }
  CHECK(bytes[1] == bytes[2]);          // LoRA and SwitchLoRA send the same adapters
  CHECK(bytes[1] == bytes[3]);          // ... and ReLoRA
  CHECK(bytes[4] == bytes[0]);          // GaLore all-reduces full gradients
  CHECK(bytes[2] < 0.5 * bytes[0]);     // ... well under full rank's weights
}

TEST_CASE("ranks started with different configs or flags exit non-zero within seconds, naming the difference") {
  const std::string d = fresh_dir("mismatch");
  const auto r = test::run_command(test::mpirun(1) + " " + train_cmd(" --batch_size 4", d) + " : -np 1 " +
                                       train_cmd(" --batch_size 4 --lr 2e-3", d) + " --model_config configs/llama_9m.json",
                                   60);
  INFO(r.output);
  CHECK(r.status != 0);
  CHECK(r.status != 124);  // failed, not timed out
  CHECK(r.seconds < 30);
  CHECK(r.output.find("ranks disagree on the run's config, flags, data or seed") != std::string::npos);
  CHECK(r.output.find("rank 1 has lr = 0.002 (rank 0: 0.003)") != std::string::npos);
  CHECK(r.output.find("rank 1 has config.hidden_size = 128 (rank 0: 64)") != std::string::npos);
}

TEST_CASE("ranks reading different data exit non-zero, naming the shard") {
  // A copy of the data with one training token changed.
  const std::string other = data_dir() + "_other";
  std::filesystem::remove_all(other);
  std::filesystem::create_directories(other);
  for (const auto& e : std::filesystem::directory_iterator(data_dir()))
    if (e.is_regular_file()) std::filesystem::copy_file(e.path(), other + "/" + e.path().filename().string());
  std::vector<int32_t> tokens = read_shard(other + "/tiny_train_000.bin", 300);
  tokens[1234] = (tokens[1234] + 1) % 300;
  write_shard(other + "/tiny_train_000.bin", tokens);
  const std::string d = fresh_dir("mismatch_data");
  const auto r = test::run_command(test::mpirun(1) + " " + train_cmd(" --batch_size 4", d) + " : -np 1 " +
                                       train_cmd(" --batch_size 4", d) + " --data " + other,
                                   60);
  INFO(r.output);
  CHECK(r.status != 0);
  CHECK(r.status != 124);
  CHECK(r.output.find("rank 1 has train_files.0.hash") != std::string::npos);
  CHECK(r.output.find("val_files") == std::string::npos);  // the val shard is the same
  std::filesystem::remove_all(other);
}

TEST_CASE("--total_batch_size must be batch_size x accumulation x ranks") {
  const auto r = test::run_command(test::mpirun(2) + " " + train_cmd(" --batch_size 4 --total_batch_size 6", fresh_dir("tbs")), 60);
  INFO(r.output);
  CHECK(r.status != 0);
  CHECK(r.status != 124);
  CHECK(r.output.find("--total_batch_size 6 must be a multiple of --batch_size 4 x 2 rank(s)") != std::string::npos);
}

TEST_CASE("a 2-rank run resumed from its checkpoint continues exactly") {
  const std::string flags = std::string(kMethods[2]) + " --batch_size 4 --total_batch_size 16 --save_every 4 --keep_checkpoints 0";
  const std::string a = fresh_dir("resume_a"), b = fresh_dir("resume_b");
  const auto straight = test::run_command(test::mpirun(2) + " " + train_cmd(flags, a));
  INFO(straight.output);
  REQUIRE(straight.status == 0);
  const auto resumed = test::run_command(test::mpirun(2) + " " + train_cmd(flags + " --resume " + checkpoint_at(a, 4), b));
  INFO(resumed.output);
  REQUIRE(resumed.status == 0);
  const auto sa = steps(a), sb = steps(b);
  REQUIRE(sa.size() == 8);
  REQUIRE(sb.size() == 4);
  for (size_t i = 0; i < 4; i++) {
    CHECK(sb[i]["step"] == sa[i + 4]["step"]);
    CHECK(sb[i]["loss"] == sa[i + 4]["loss"]);  // bitwise: the same arithmetic in the same order
  }
  const Checkpoint ca = load_checkpoint(checkpoint_at(a, 8)), cb = load_checkpoint(checkpoint_at(b, 8));
  // Every tensor: weights, adapters, candidates, optimizer state.
  CHECK(ca.blobs.size() == cb.blobs.size());
  for (const auto& [name, bytes] : ca.blobs) {
    INFO(name);
    CHECK(bytes == cb.blob(name, b));
  }
}
