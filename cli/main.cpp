// The zerorl binary: dispatch to a registered subcommand (cli/cmd_*.cpp).
#include <cstdio>
#include <exception>
#include <iostream>
#include <map>

#include <torch/version.h>

#include "cli/command.h"
#include "core/comm.h"
#include "core/error.h"

namespace zerorl::cli {

static std::map<std::string, Command>& registry() {
  static std::map<std::string, Command> r;
  return r;
}

bool register_command(Command command) {
  registry()[command.name] = std::move(command);
  return true;
}

const std::vector<Command>& commands() {
  static std::vector<Command> list;
  list.clear();
  for (auto& [name, c] : registry()) list.push_back(c);
  return list;
}

static void print_overview(std::ostream& os) {
  os << "usage: zerorl COMMAND [args...]   (zerorl COMMAND --help for details;\n"
        "       zerorl --version)\n\ncommands:\n";
  for (auto& c : commands()) {
    os << "  " << c.name;
    for (size_t i = c.name.size(); i < 10; ++i) os << ' ';
    os << c.summary << "\n";
  }
}

}  // namespace zerorl::cli

int main(int argc, char** argv) {
  using namespace zerorl;
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    cli::print_overview(argc < 2 ? std::cerr : std::cout);
    return argc < 2 ? 2 : 0;
  }
  std::string name = argv[1];
  if (name == "--version" || name == "-V") {
#ifdef ZERORL_WITH_CUDA
    const char* cuda = "CUDA kernels and NCCL";
#else
    const char* cuda = "CPU only";
#endif
    std::cout << "zerorl " << ZERORL_VERSION << " (LibTorch " << TORCH_VERSION << ", " << cuda
              << ")\n";
    return 0;
  }
  auto& reg = cli::registry();
  auto it = reg.find(name);
  if (it == reg.end()) {
    std::cerr << "zerorl: unknown command '" << name << "'\n";
    cli::print_overview(std::cerr);
    return 2;
  }
  std::vector<std::string> rest(argv + 2, argv + argc);
  cli::Args args(rest);
  if (args.help_requested()) {
    std::cout << it->second.usage;
    return 0;
  }
  mpi_init_if_launched(&argc, &argv);
  try {
    return it->second.run(args);
  } catch (const cli::UsageError& e) {
    std::cerr << "zerorl " << name << ": " << e.what() << "\n\n" << it->second.usage;
    mpi_abort_all(2);
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "zerorl " << name << ": error: " << e.what() << std::endl;
    mpi_abort_all(1);
    return 1;
  }
}
