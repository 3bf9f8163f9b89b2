#include "train/flags.h"

#include <cstdio>
#include <cstdlib>

#include "engine/error.h"

namespace switchlora {

Flags::Flags(int argc, char** argv, std::string command, std::string summary)
    : command_(std::move(command)), summary_(std::move(summary)) {
  for (int i = 0; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") help_ = true;
    else args_.push_back(a);
  }
  used_.assign(args_.size(), false);
}

bool Flags::has(const std::string& name) const {
  for (const std::string& a : args_)
    if (a == "--" + name || a.rfind("--" + name + "=", 0) == 0) return true;
  return false;
}

void Flags::refuse(std::initializer_list<const char*> names, const std::string& why) const {
  for (const char* name : names)
    if (has(name)) throw Error(std::string("--") + name + " " + why);
}

// Every value of --name, in order (marking its tokens used).
std::vector<std::string> Flags::find_values(const std::string& name) {
  const std::string key = "--" + name;
  std::vector<std::string> found;
  for (size_t i = 0; i < args_.size(); i++) {
    if (args_[i].rfind(key + "=", 0) == 0) {
      used_[i] = true;
      found.push_back(args_[i].substr(key.size() + 1));
    } else if (args_[i] == key) {
      if (i + 1 >= args_.size())
        throw Error("flag " + key + " needs a value (see switchlora " + command_ + " --help)");
      used_[i] = used_[i + 1] = true;
      found.push_back(args_[++i]);
    }
  }
  return found;
}

// The value of --name; the last one given wins.
std::optional<std::string> Flags::find_value(const std::string& name) {
  const std::vector<std::string> all = find_values(name);
  if (all.empty()) return std::nullopt;
  return all.back();
}

std::vector<std::string> Flags::get_all(const std::string& name, const std::string& help) {
  describe(name, "S", help + " (may be repeated)");
  std::vector<std::string> v = find_values(name);
  defaults_[name] = nlohmann::json::array();
  values_[name] = v;
  return v;
}

std::vector<std::string> Flags::positional(const std::string& name, const std::string& help) {
  char line[512];
  std::snprintf(line, sizeof line, "  %-30s %s", name.c_str(), help.c_str());
  help_lines_.push_back(line);
  std::vector<std::string> out;
  for (size_t i = 0; i < args_.size(); i++)
    if (!used_[i] && args_[i].rfind("--", 0) != 0) {
      used_[i] = true;
      out.push_back(args_[i]);
    }
  return out;
}

void Flags::describe(const std::string& name, const std::string& value, const std::string& help) {
  char line[512];
  std::snprintf(line, sizeof line, "  --%-28s %s", (name + (value.empty() ? "" : " " + value)).c_str(),
                help.c_str());
  help_lines_.push_back(line);
}

std::string Flags::get_string(const std::string& name, const std::string& fallback, const std::string& help) {
  describe(name, "S", help + (fallback.empty() ? "" : " [" + fallback + "]"));
  const std::optional<std::string> v = find_value(name);
  defaults_[name] = fallback;
  return values_[name] = v ? *v : fallback;
}

int Flags::get_int(const std::string& name, int fallback, const std::string& help) {
  describe(name, "N", help + " [" + std::to_string(fallback) + "]");
  const std::optional<std::string> v = find_value(name);
  values_[name] = defaults_[name] = fallback;
  if (!v) return fallback;
  char* end = nullptr;
  long x = std::strtol(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || x < -2147483647L || x > 2147483647L)
    throw Error("flag --" + name + " expects an integer, got \"" + *v + "\"");
  values_[name] = (int)x;
  return (int)x;
}

float Flags::get_float(const std::string& name, float fallback, const std::string& help) {
  char def[64];
  std::snprintf(def, sizeof def, "%g", fallback);
  describe(name, "X", help + " [" + def + "]");
  const std::optional<std::string> v = find_value(name);
  values_[name] = defaults_[name] = fallback;
  if (!v) return fallback;
  char* end = nullptr;
  float x = std::strtof(v->c_str(), &end);
  if (v->empty() || *end != '\0')
    throw Error("flag --" + name + " expects a number, got \"" + *v + "\"");
  values_[name] = x;
  return x;
}

namespace {

// true/false, 1/0, and Python's True/False (the authors' scripts write
// `--autoresume True`); nullopt for anything else.
std::optional<bool> boolean_word(const std::string& v) {
  if (v == "true" || v == "True" || v == "1") return true;
  if (v == "false" || v == "False" || v == "0") return false;
  return std::nullopt;
}

}  // namespace

bool Flags::get_bool(const std::string& name, const std::string& help) {
  describe(name, "", help);
  const std::string key = "--" + name;
  bool value = false;
  for (size_t i = 0; i < args_.size(); i++) {
    if (args_[i] == key) {
      used_[i] = true;
      value = true;
      // `--flag True` / `--flag false`: the next argument is its value.
      if (i + 1 < args_.size() && !used_[i + 1] && boolean_word(args_[i + 1])) {
        used_[++i] = true;
        value = *boolean_word(args_[i]);
      }
    } else if (args_[i].rfind(key + "=", 0) == 0) {
      used_[i] = true;
      const std::string v = args_[i].substr(key.size() + 1);
      if (!boolean_word(v)) throw Error("flag " + key + " expects true or false, got \"" + v + "\"");
      value = *boolean_word(v);
    }
  }
  defaults_[name] = false;
  values_[name] = value;
  return value;
}

nlohmann::json Flags::values(const std::set<std::string>& except) const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, value] : values_)
    if (!except.count(name)) j[name] = value;
  return j;
}

nlohmann::json Flags::default_of(const std::string& name) const {
  auto it = defaults_.find(name);
  return it == defaults_.end() ? nlohmann::json() : it->second;
}

bool Flags::finish() {
  if (help_) {
    std::printf("usage: switchlora %s [flags]\n%s\n\nflags:\n", command_.c_str(), summary_.c_str());
    for (const std::string& l : help_lines_) std::printf("%s\n", l.c_str());
    return true;
  }
  for (size_t i = 0; i < args_.size(); i++)
    if (!used_[i])
      throw Error("unknown argument \"" + args_[i] + "\" for 'switchlora " + command_ +
                  "' (see switchlora " + command_ + " --help)");
  return false;
}

}  // namespace switchlora
