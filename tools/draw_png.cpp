#include "tools/draw_png.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "data/file_io.h"
#include "engine/error.h"

#ifndef SWITCHLORA_SOURCE_DIR
#define SWITCHLORA_SOURCE_DIR "."
#endif

namespace switchlora {

void draw_png(const std::string& script, const nlohmann::json& data, const std::string& out_png,
              const std::string& flag) {
  const char* tools = std::getenv("SWITCHLORA_TOOLS");
  const std::string path = std::string(tools ? tools : SWITCHLORA_SOURCE_DIR "/tools") + "/" + script;
  const char* py = std::getenv("SWITCHLORA_PYTHON");
  const std::string python = py ? py : "/usr/bin/python3";
  if (!std::filesystem::exists(path))
    throw Error(flag + ": the plotting script " + path + " is missing (set SWITCHLORA_TOOLS to the tools/ directory)");
  if (out_png.empty()) throw Error(flag + " needs a file name, e.g. " + flag + " out.png");
  const std::filesystem::path dir = std::filesystem::path(out_png).parent_path();
  if (!dir.empty() && !std::filesystem::is_directory(dir))
    throw Error(flag + " " + out_png + ": no directory " + dir.string());

  const std::string json = out_png + ".data.json";
  write_file_atomic(json, data.dump());
  const pid_t pid = fork();
  if (pid < 0) throw Error(flag + ": fork failed");
  if (pid == 0) {
    execl(python.c_str(), python.c_str(), path.c_str(), json.c_str(), out_png.c_str(), (char*)nullptr);
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  std::filesystem::remove(json);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error(flag + " " + out_png + ": " + script + " failed (" +
                (WIFEXITED(status) && WEXITSTATUS(status) == 127 ? "no " + python
                                                                  : "exit " + std::to_string(WEXITSTATUS(status))) +
                "; it needs python3-matplotlib: make deps-test)");
}

}  // namespace switchlora
