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
// tools/CMakeLists.txt generates these (cmake/build_info.cmake) at every build
extern const char* const kBuildVersion;
extern const char* const kBuildCommit;   // git sha of the built tree, "+dirty" if it had changes
extern const char* const kBuildDetails;  // build type, CUDA on/off
}  // namespace spw::cli

static void print_help() {
  fmt::print("usage: spillway <command> [options]\n\ncommands:\n");
  auto cmds = spw::cli::commands();
  std::sort(cmds.begin(), cmds.end(), [](auto& a, auto& b) { return a.name < b.name; });
  for (const auto& c : cmds) fmt::print("  {:<12} {}\n", c.name, c.summary);
  fmt::print("\n`spillway <command> --help` shows a command's options; `spillway --version` the build.\n");
}

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    print_help();
    return argc < 2 ? 2 : 0;
  }
  std::string name = argv[1];
  if (name == "--version" || name == "version") {
    // one line, read by the CLI benchmarks (bench/results_format.py binary_commit)
    fmt::print("spillway {} commit {} ({})\n", spw::cli::kBuildVersion, spw::cli::kBuildCommit,
               spw::cli::kBuildDetails);
    return 0;
  }
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
