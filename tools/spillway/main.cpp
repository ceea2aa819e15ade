// spillway <command> [args]: the decode demo, the self-check and the project's tools.
#include <fmt/format.h>

#include <algorithm>
#include <exception>

#include "kernels/common/error.h"
#include "tools/spillway/command.h"

namespace spw::cli {
std::vector<Command>& commands() {
  static std::vector<Command> all;
  return all;
}
}  // namespace spw::cli

static void print_help() {
  fmt::print("usage: spillway <command> [options]\n\ncommands:\n");
  auto cmds = spw::cli::commands();
  std::sort(cmds.begin(), cmds.end(), [](auto& a, auto& b) { return a.name < b.name; });
  for (const auto& c : cmds) fmt::print("  {:<12} {}\n", c.name, c.summary);
  fmt::print("\n`spillway <command> --help` shows a command's options.\n");
}

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    print_help();
    return argc < 2 ? 2 : 0;
  }
  std::string name = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  for (const auto& c : spw::cli::commands()) {
    if (c.name != name) continue;
    try {
      return c.run(args);
    } catch (const spw::Error& e) {
      fmt::print(stderr, "spillway {}: error: {}\n", name, e.what());
      return 1;
    } catch (const std::exception& e) {
      fmt::print(stderr, "spillway {}: unexpected error: {}\n", name, e.what());
      return 1;
    }
  }
  fmt::print(stderr, "spillway: unknown command '{}'\n\n", name);
  print_help();
  return 2;
}
