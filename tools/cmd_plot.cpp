// switchlora plot RUN_DIR... --out loss.png: training and validation loss
// against tokens for one or several runs (each run's metrics.jsonl, and its
// run.json, or its newest checkpoint, for the flags), drawn by
// tools/plot_runs.py. SwitchLoRA runs get a second panel: the switch
// interval and the vectors switched per step.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "data/file_io.h"
#include "engine/error.h"
#include "model/checkpoint.h"
#include "tools/commands.h"
#include "tools/draw_png.h"
#include "train/flags.h"

namespace switchlora {

namespace {

// The run's flags: run.json (written by train at start), else the newest
// checkpoint's identity.
nlohmann::json run_flags(const std::string& dir) {
  const std::string path = dir + "/run.json";
  if (std::filesystem::exists(path)) {
    try {
      return nlohmann::json::parse(read_file(path));
    } catch (const nlohmann::json::exception& e) {
      throw Error(path + ": not valid JSON (" + e.what() + ")");
    }
  }
  const std::string ck = resolve_checkpoint(dir);
  if (ck.empty()) throw Error(dir + ": neither run.json nor a checkpoint, so the run's flags are unknown");
  return load_checkpoint(ck).meta.value("identity", nlohmann::json::object());
}

// A legend entry: the method and the flags that tell runs apart.
std::string label_of(const std::string& dir, const nlohmann::json& flags) {
  const std::string method = flags.value("method", "?");
  std::string label = std::filesystem::path(dir).filename().string() + ": " + method;
  char lr[32];
  std::snprintf(lr, sizeof lr, " lr %g", flags.value("lr", 0.0));
  label += lr;
  if (method == "galore") label += " r" + std::to_string(flags.value("rank", 0));
  else if (method != "full") label += " r" + std::to_string(flags.value("lora_rank", 0));
  return label;
}

nlohmann::json read_run(const std::string& dir) {
  if (!std::filesystem::is_directory(dir)) throw Error(dir + ": not a run directory");
  const std::string metrics = dir + "/metrics.jsonl";
  std::ifstream in(metrics);
  if (!in) throw Error(metrics + ": missing (is " + dir + " a run directory?)");
  const nlohmann::json flags = run_flags(dir);
  const nlohmann::json batch = flags.value("total_batch_size", 0), length = flags.value("max_length", 0);
  const double tokens_per_step = batch.get<double>() * length.get<double>();
  if (tokens_per_step <= 0) throw Error(dir + ": its flags give no total_batch_size x max_length");
  nlohmann::json train = {{"tokens", nlohmann::json::array()}, {"loss", nlohmann::json::array()}};
  nlohmann::json val = train;
  nlohmann::json sw = {{"tokens", nlohmann::json::array()}, {"interval", nlohmann::json::array()},
                       {"switched", nlohmann::json::array()}};
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    n++;
    if (line.empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      throw Error(metrics + ":" + std::to_string(n) + ": not a JSON line");
    }
    if (!j.contains("step")) continue;
    const double tokens = j["step"].get<double>() * tokens_per_step;
    if (j.contains("loss")) {
      train["tokens"].push_back(tokens);
      train["loss"].push_back(j["loss"]);
      if (j.contains("switch_interval")) {
        sw["tokens"].push_back(tokens);
        sw["interval"].push_back(j["switch_interval"]);
        sw["switched"].push_back(j.value("switched", 0));
      }
    } else if (j.contains("val_loss")) {
      val["tokens"].push_back(tokens);
      val["loss"].push_back(j["val_loss"]);
    }
  }
  if (train["loss"].empty()) throw Error(metrics + ": no training steps yet");
  return {{"label", label_of(dir, flags)}, {"train", train}, {"val", val},
          {"switch", sw["tokens"].empty() ? nlohmann::json(nullptr) : sw}};
}

}  // namespace

int cmd_plot(int argc, char** argv) {
  Flags f(argc, argv, "plot",
          "Training and validation loss against tokens for one or several runs; SwitchLoRA runs add a panel "
          "with the switch interval and vectors switched per step.");
  const std::string out = f.get_string("out", "loss.png", "the PNG to write");
  const std::vector<std::string> dirs = f.positional("RUN_DIR...", "run directories (train's --save_dir)");
  if (f.finish()) return 0;
  if (dirs.empty()) throw Error("give one or more run directories: switchlora plot RUN_DIR... --out loss.png");
  nlohmann::json data = {{"runs", nlohmann::json::array()}};
  for (const std::string& d : dirs) data["runs"].push_back(read_run(d));
  draw_png("plot_runs.py", data, out, "--out");
  std::printf("wrote %s (%zu run%s)\n", out.c_str(), dirs.size(), dirs.size() == 1 ? "" : "s");
  return 0;
}

}  // namespace switchlora
