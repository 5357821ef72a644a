// Subcommands of the `zerorl` binary.
//
// Each subcommand lives in its own cli/cmd_<name>.cpp and registers itself:
//
//   static int run_grade(zerorl::cli::Args& args) { ... return 0; }
//   ZR_REGISTER_COMMAND(grade, "JSONL {gold, completion} on stdin -> verdicts",
//                       "usage: zerorl grade [--summary]\n...", run_grade);
//
// main() dispatches on argv[1], prints the command's usage for --help, and
// maps errors to exit codes: UsageError (unknown flag, bad value) -> 2 with the
// usage; zerorl::Error -> 1 with the message (and MPI_Abort under a launcher).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "cli/args.h"

namespace zerorl::cli {

struct Command {
  std::string name;
  std::string summary;  // one line for `zerorl --help`
  std::string usage;    // full text for `zerorl NAME --help`
  std::function<int(Args&)> run;
};

// Registration happens during static initialisation; the registry is ordered
// by name.
bool register_command(Command command);
const std::vector<Command>& commands();

}  // namespace zerorl::cli

#define ZR_REGISTER_COMMAND(name, summary, usage, fn) \
  static const bool zr_registered_##name =            \
      ::zerorl::cli::register_command({#name, summary, usage, fn})
