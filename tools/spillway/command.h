// Subcommand registry of the `spillway` CLI. Each cmd_*.cpp defines one command and
// registers it with a static CommandRegistration (the files are compiled straight into the
// executable, so the registrations are never dropped by the linker).
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace spw::cli {

struct Command {
  std::string name;     // e.g. "selfcheck"
  std::string summary;  // one line for `spillway --help`
  std::function<int(const std::vector<std::string>& args)> run;  // args after the name
};

std::vector<Command>& commands();

struct CommandRegistration {
  explicit CommandRegistration(Command c) { commands().push_back(std::move(c)); }
};

}  // namespace spw::cli
