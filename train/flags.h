// A tiny command-line parser. Each getter both reads a flag and registers it
// with its help text, so `--help` lists exactly the flags a command reads.
//
//   Flags f(argc, argv, "train", "Pre-train a LLaMA model.");
//   float lr = f.get_float("lr", 1e-3f, "peak learning rate");
//   bool lora = f.get_bool("use_lora", "train LoRA adapters");
//   if (f.finish()) return 0;   // printed --help; else throws on unknown flags
//
// Values are written `--name value` or `--name=value`; boolean flags take no
// value (`--use_lora`) or an explicit `--use_lora=false`.
#pragma once
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace switchlora {

class Flags {
 public:
  Flags(int argc, char** argv, std::string command, std::string summary);

  std::string get_string(const std::string& name, const std::string& fallback, const std::string& help);
  int get_int(const std::string& name, int fallback, const std::string& help);
  float get_float(const std::string& name, float fallback, const std::string& help);
  bool get_bool(const std::string& name, const std::string& help);
  // Every value of a flag that may be given several times, in order
  // (`--checkpoint A --checkpoint B`).
  std::vector<std::string> get_all(const std::string& name, const std::string& help);
  // The arguments that are neither flags nor flag values (`plot RUN_DIR...`);
  // call it after every getter.
  std::vector<std::string> positional(const std::string& name, const std::string& help);
  bool has(const std::string& name) const;  // given on the command line?
  // Throws "--NAME <why>" for the first of `names` given on the command line
  // (a method's flags without that method, say).
  void refuse(std::initializer_list<const char*> names, const std::string& why) const;

  // Prints the help and returns true when --help was given; otherwise throws
  // switchlora::Error for any argument no getter consumed.
  bool finish();
  // The arguments as given, for checkpoints and logs.
  std::vector<std::string> args() const { return args_; }
  // Every flag read so far with its value (given or default) as a JSON value
  // of its type ("--lr 1e-3" and "--lr 0.001" agree), except those in
  // `except`: what defines a run, for resume and rank-agreement checks.
  nlohmann::json values(const std::set<std::string>& except = {}) const;
  // The default of a flag read so far (null when unknown).
  nlohmann::json default_of(const std::string& name) const;

 private:
  std::optional<std::string> find_value(const std::string& name);
  std::vector<std::string> find_values(const std::string& name);
  void describe(const std::string& name, const std::string& value, const std::string& help);

  std::string command_, summary_;
  std::vector<std::string> args_;
  std::vector<bool> used_;
  std::vector<std::string> help_lines_;
  std::map<std::string, nlohmann::json> values_, defaults_;  // flag -> typed value
  bool help_ = false;
};

}  // namespace switchlora
