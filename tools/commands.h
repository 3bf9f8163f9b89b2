// The subcommands of the `switchlora` binary; each parses its own flags.
#pragma once
#include "dist/communicator.h"

namespace switchlora {

int cmd_prepare(int argc, char** argv);
int cmd_train(int argc, char** argv, Communicator& comm);
int cmd_eval(int argc, char** argv);
int cmd_sample(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_export(int argc, char** argv);
int cmd_plan(int argc, char** argv);
int cmd_inspect(int argc, char** argv);
int cmd_plot(int argc, char** argv);

}  // namespace switchlora
