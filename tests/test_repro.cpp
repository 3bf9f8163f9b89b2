// tools/repro.py, the reproduction runner, on its cpu-tiny preset: the whole
// pipeline (every method and row, sweeps, seeds, warm starts, the table and
// the plot), that a finished run is never rerun and an interrupted one
// resumes, and its refusals. The paper presets' commands parse as train flags.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/cli.h"

namespace fs = std::filesystem;
using namespace switchlora;

namespace {

std::string repro(const std::string& args) {
  return "/usr/bin/python3 tools/repro.py --bin " + test::bin() + " " + args;
}

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
  return n;
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream f(p);
  return nlohmann::json::parse(f);
}

}  // namespace

TEST_CASE("repro --preset cpu-tiny runs every row, resumes, and never reruns a finished run") {
  test::brown_data();  // make data's corpus
  const fs::path out = fs::temp_directory_path() / ("repro_tiny_" + std::to_string(getpid()));
  fs::remove_all(out);
  const test::RunResult r = test::run(repro("--preset cpu-tiny --out " + out.string() + " --lanes 2 --threads 2"));
  INFO(r.output);
  REQUIRE(r.rc == 0);
  const nlohmann::json res = read_json(out / "results.json");
  const char* rows[] = {"full", "lora", "relora", "galore", "switchlora", "relora_warm", "switchlora_warm",
                        "lora+na_lr", "relora+na_lr", "galore+na_lr", "switchlora+na_lr"};
  for (const char* row : rows) {
    CAPTURE(row);
    const nlohmann::json& c = res.at("cells").at(std::string("tiny/") + row);
    CHECK(c.at("seeds") == nlohmann::json({0, 1}));  // both seeds, at the sweep's best rate
    CHECK(c.at("ppl_mean").get<double>() > 1.0);
    CHECK(c.at("ppl_std").get<double>() >= 0.0);
    CHECK(c.at("trainable").get<double>() > 0);
    CHECK(c.at("tokens_per_s").get<double>() > 0);
    CHECK(c.at("peak_rss_mb").get<double>() > 10);
  }
  // Every run read the same tokens: the warm rows count their full-rank start.
  for (const nlohmann::json& run : res.at("runs")) CHECK(run.at("tokens") == 24 * 4 * 32);
  // LoRA trains fewer values than full rank, and all-reduces 4 bytes each.
  const nlohmann::json& full = res.at("cells").at("tiny/full");
  const nlohmann::json& lora = res.at("cells").at("tiny/lora");
  CHECK(lora.at("trainable").get<double>() < full.at("trainable").get<double>());
  CHECK(lora.at("allreduce_bytes_per_step") == 4 * lora.at("trainable").get<int64_t>());
  // The ablation trains what no adapter covers at full rank's best rate.
  const nlohmann::json first_na = [&] {
    for (const nlohmann::json& run : res.at("runs"))
      if (run.at("method") == "lora+na_lr") return run;
    return nlohmann::json();
  }();
  std::ostringstream lr;
  lr << "--non_adapter_lr " << full.at("lr").get<double>();
  CHECK(first_na.at("command").get<std::string>().find(lr.str()) != std::string::npos);
  const std::string table = [&] {
    std::ifstream f(out / "table.md");
    return std::string(std::istreambuf_iterator<char>(f), {});
  }();
  for (const char* row : rows) CHECK(table.find(std::string("| ") + row + " |") != std::string::npos);
  CHECK(fs::file_size(out / "loss_tiny.png") > 10000);

  // Nothing reruns; a run whose result is gone runs again, from its checkpoint when it has one.
  const test::RunResult again = test::run(repro("--preset cpu-tiny --out " + out.string()));
  CHECK(again.rc == 0);
  CHECK(count(again.output, "[start]") == 0);
  const fs::path one = out / "runs/tiny/lora" / ("lr" + std::string("0.02") + "_seed1");
  REQUIRE(fs::exists(one / "result.json"));
  const nlohmann::json before = read_json(one / "result.json");
  fs::remove(one / "result.json");
  // (with the threads of the first: a run's bits depend on its OpenMP threads)
  const test::RunResult rerun = test::run(repro("--preset cpu-tiny --out " + out.string() + " --lanes 2 --threads 2"));
  INFO(rerun.output);
  CHECK(rerun.rc == 0);
  CHECK(count(rerun.output, "[start]") == 1);
  CHECK(read_json(one / "result.json").at("final_val_loss") == before.at("final_val_loss"));

  // A results directory of one preset is refused for another, and nothing in it changes.
  const auto stamp = fs::last_write_time(out / "results.json");
  const test::RunResult other = test::run(repro("--preset cpu-small --out " + out.string()));
  CHECK(other.rc != 0);
  CHECK(other.output.find("holds results of preset 'cpu-tiny'") != std::string::npos);
  CHECK(fs::last_write_time(out / "results.json") == stamp);
  fs::remove_all(out);
}

TEST_CASE("repro refuses an unknown preset, a corpus too small, and a directory that is not its own") {
  const test::RunResult unknown = test::run(repro("--preset cpu-huge --out /tmp/x"));
  CHECK(unknown.rc != 0);
  CHECK(unknown.output.find("unknown preset 'cpu-huge'") != std::string::npos);
  CHECK(unknown.output.find("cpu-tiny") != std::string::npos);  // lists the presets

  const fs::path out = fs::temp_directory_path() / ("repro_refuse_" + std::to_string(getpid()));
  fs::remove_all(out);
  // cpu-small reads 16 x 129 x 1000 tokens a run; Brown has 1.4 M, the sum of its shards.
  const test::RunResult small = test::run(repro("--preset cpu-small --data " + test::brown_data() + " --out " + out.string()));
  CHECK(small.rc != 0);
  CHECK(small.output.find("train tokens; preset cpu-small reads") != std::string::npos);
  CHECK_FALSE(fs::exists(out));

  fs::create_directories(out);
  std::ofstream(out / "notes.txt") << "mine";
  const test::RunResult foreign = test::run(repro("--preset cpu-tiny --out " + out.string()));
  CHECK(foreign.rc != 0);
  CHECK(foreign.output.find("not a results directory") != std::string::npos);
  CHECK(fs::exists(out / "notes.txt"));
  fs::remove_all(out);
}

TEST_CASE("the paper presets print mpirun commands whose flags train accepts") {
  for (const char* preset : {"paper-130m", "paper-250m", "paper-350m", "paper-1b"}) {
    CAPTURE(preset);
    const test::RunResult r = test::run(repro(std::string("--preset ") + preset));
    REQUIRE(r.rc == 0);
    std::istringstream lines(r.output);
    int commands = 0;
    for (std::string line; std::getline(lines, line);) {
      const std::string head = "mpirun -np 8 build/switchlora train ";
      if (line.rfind(head, 0) != 0) continue;
      commands++;
      // plan reads the same flags as train (parse_train_flags) and needs no data or GPU.
      std::string flags = line.substr(head.size());
      const test::RunResult p = test::run(test::bin() + " plan " + flags);
      INFO(line);
      INFO(p.output);
      CHECK(p.rc == 0);
    }
    CHECK(commands >= 3);
  }
  const test::RunResult b = test::run(repro("--preset paper-1b"));
  CHECK(b.output.find("paper ppl 15.23") != std::string::npos);  // the abstract's 1.3B pair
  CHECK(b.output.find("paper ppl 15.01") != std::string::npos);
}
