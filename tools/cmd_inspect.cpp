// switchlora inspect: what a run learned, layer by layer. For each
// attention/MLP linear, the singular values of the learned update
// dW = W_eff(t) - W_eff(0) (W_eff = W + s B A) against the run's start, and
// their effective rank, stable rank and count above 1% (model/update_spectrum.h
// defines them). The baseline is the run's SAVE_DIR/initial.bin (train
// --save_initial), else the --warmed_up_model it started from, else --baseline.
//
//   switchlora inspect --checkpoint runs/demo
//   switchlora inspect --checkpoint runs/lora --checkpoint runs/switchlora --plot spectra.png --kind q
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "engine/error.h"
#include "model/update_spectrum.h"
#include "tools/commands.h"
#include "tools/draw_png.h"
#include "train/flags.h"
#include "train/trainer.h"

namespace switchlora {

namespace {

const char* const kKinds[] = {"q", "k", "v", "o", "gate", "up", "down"};

struct Inspected {
  std::string path, baseline, method, label;
  int step = 0, lora_rank = 0;
  std::vector<LayerUpdate> layers;
};

// The checkpoint a --checkpoint or --baseline names: a file, a run directory
// (its newest checkpoint), or an export directory.
std::unique_ptr<Llama> load_named(const std::string& where, const std::string& flag) {
  try {
    return load_model(where);
  } catch (const Error& e) {
    throw Error(flag + " " + where + ": " + e.what());
  }
}

Inspected inspect_one(const std::string& where, const std::string& baseline_flag) {
  Inspected r;
  r.path = resolve_checkpoint(where);
  if (r.path.empty()) throw Error("--checkpoint " + where + ": no checkpoint (checkpoint_<step>.bin and 'latest') in this directory");
  Checkpoint ck;
  try {
    ck = load_checkpoint(r.path);
  } catch (const Error& e) {
    throw Error(std::string("--checkpoint ") + e.what());
  }
  const std::unique_ptr<Llama> now = model_from_checkpoint(ck, r.path);
  r.method = ck.meta.value("method", "?");
  r.step = ck.meta.value("step", 0);
  r.lora_rank = now->lora.use_lora ? now->lora.lora_rank : 0;
  // The baseline: what this run's W_eff was at step 0.
  const std::filesystem::path initial = std::filesystem::path(r.path).parent_path() / "initial.bin";
  const std::string warm = ck.meta.value("warmed_up_model", "");
  if (!baseline_flag.empty()) r.baseline = baseline_flag;
  else if (std::filesystem::exists(initial)) r.baseline = initial.string();
  else if (!warm.empty()) r.baseline = warm;
  else
    throw Error("--checkpoint " + where + ": no baseline (no " + initial.string() +
                " and no --warmed_up_model): pass --baseline, or train with --save_initial");
  const std::unique_ptr<Llama> base = load_named(r.baseline, "--baseline");
  try {
    r.layers = learned_updates(*now, *base);
  } catch (const Error& e) {
    throw Error("--checkpoint " + r.path + " against --baseline " + r.baseline + ": " + e.what());
  }
  r.label = r.method + (r.lora_rank ? " r" + std::to_string(r.lora_rank) : "") + ", step " +
            std::to_string(r.step) + " (" + std::filesystem::path(r.path).parent_path().filename().string() + ")";
  return r;
}

nlohmann::json to_json(const Inspected& r) {
  nlohmann::json layers = nlohmann::json::array();
  for (const LayerUpdate& l : r.layers)
    layers.push_back({{"name", l.name}, {"kind", l.kind}, {"rows", l.rows}, {"cols", l.cols},
                      {"frobenius", l.spectrum.frobenius}, {"effective_rank", l.spectrum.effective_rank},
                      {"stable_rank", l.spectrum.stable_rank}, {"above_1pct", l.spectrum.above_1pct},
                      {"numerical_rank", l.spectrum.numerical_rank(1e-5)}, {"singular_values", l.spectrum.sigma}});
  return {{"checkpoint", r.path}, {"baseline", r.baseline}, {"method", r.method}, {"step", r.step},
          {"lora_rank", r.lora_rank}, {"label", r.label}, {"layers", layers}};
}

void print_table(const Inspected& r) {
  std::printf("%s (%s) against %s\n", r.path.c_str(), r.label.c_str(), r.baseline.c_str());
  std::printf("  %-38s %11s %10s %9s %8s %6s %11s\n", "layer", "shape", "|dW|_F", "eff.rank", "stable", ">1%",
              "rank(1e-5)");
  for (const LayerUpdate& l : r.layers) {
    const std::string shape = std::to_string(l.rows) + "x" + std::to_string(l.cols);
    std::printf("  %-38s %11s %10.4g %9.1f %8.2f %6d %11d\n", l.name.c_str(), shape.c_str(), l.spectrum.frobenius,
                l.spectrum.effective_rank, l.spectrum.stable_rank, l.spectrum.above_1pct,
                l.spectrum.numerical_rank(1e-5));
  }
  std::printf("  by kind, mean over layers%s:\n", r.lora_rank ? (" (LoRA rank r = " + std::to_string(r.lora_rank) + ")").c_str() : "");
  std::printf("  %-6s %9s %8s %6s %11s %9s\n", "kind", "eff.rank", "stable", ">1%", "rank(1e-5)", "min(m,n)");
  for (const char* kind : kKinds) {
    double eff = 0, stable = 0, above = 0, rank = 0;
    int n = 0, side = 0;
    for (const LayerUpdate& l : r.layers)
      if (l.kind == kind) {
        eff += l.spectrum.effective_rank, stable += l.spectrum.stable_rank;
        above += l.spectrum.above_1pct, rank += l.spectrum.numerical_rank(1e-5);
        side = std::min(l.rows, l.cols), n++;
      }
    if (n) std::printf("  %-6s %9.1f %8.2f %6.1f %11.1f %9d\n", kind, eff / n, stable / n, above / n, rank / n, side);
  }
}

}  // namespace

int cmd_inspect(int argc, char** argv) {
  Flags f(argc, argv, "inspect",
          "Singular values of each layer's learned update dW = W_eff(t) - W_eff(0), W_eff = W + s B A. "
          "effective rank = exp(entropy of sigma_i / sum sigma) (Roy & Vetterli 2007); stable rank = "
          "||dW||_F^2 / ||dW||_2^2; >1% = how many sigma_i exceed 0.01 sigma_1; rank(1e-5) = how many exceed "
          "1e-5 sigma_1. All in double precision.");
  const std::vector<std::string> checkpoints =
      f.get_all("checkpoint", "a checkpoint file or run directory (its newest checkpoint)");
  const std::string baseline = f.get_string(
      "baseline", "", "the step-0 model to measure against; default: the run's initial.bin (train --save_initial), "
                      "else its --warmed_up_model");
  const bool json = f.get_bool("json", "print JSON (every layer's singular values too) instead of tables");
  const std::string plot = f.get_string("plot", "", "draw the spectra of --kind for every --checkpoint into this PNG");
  const std::string kind = f.get_string("kind", "q", "with --plot: q | k | v | o | gate | up | down");
  if (f.finish()) return 0;
  if (checkpoints.empty()) throw Error("--checkpoint is required (a checkpoint file or a run directory)");
  bool known = false;
  for (const char* k : kKinds) known = known || kind == k;
  if (!known) throw Error("--kind must be q, k, v, o, gate, up or down, got \"" + kind + "\"");

  std::vector<Inspected> runs;
  for (const std::string& c : checkpoints) runs.push_back(inspect_one(c, baseline));
  nlohmann::json all = nlohmann::json::array();
  for (const Inspected& r : runs) all.push_back(to_json(r));
  if (json) std::printf("%s\n", nlohmann::json{{"runs", all}}.dump().c_str());
  else
    for (const Inspected& r : runs) print_table(r);

  if (!plot.empty()) {
    nlohmann::json data = {{"kind", kind}, {"runs", nlohmann::json::array()}};
    for (const nlohmann::json& r : all) {
      nlohmann::json layers = nlohmann::json::array();
      for (const nlohmann::json& l : r["layers"])
        if (l["kind"] == kind) layers.push_back({{"name", l["name"]}, {"sigma", l["singular_values"]}});
      data["runs"].push_back({{"label", r["label"]}, {"lora_rank", r["lora_rank"]}, {"layers", layers}});
    }
    draw_png("plot_spectra.py", data, plot, "--plot");
    if (!json) std::printf("wrote %s\n", plot.c_str());
  }
  return 0;
}

}  // namespace switchlora
