// Minimal "--flag value" parsing shared by the CLI subcommands that have few options.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "kernels/common/error.h"

namespace spw::cli {

/// The items of a comma-separated list, in order ("" gives one empty item).
inline std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> items;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    items.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return items;
}

/// `v` as an int when the whole of it is one in int's range ("2.5", "1e10", "" and "3x" are
/// not), else nullopt: callers name the option in their message.
inline std::optional<int> to_int(const std::string& v) {
  size_t used = 0;
  int x = 0;
  try {
    x = std::stoi(v, &used);
  } catch (...) {
    return std::nullopt;
  }
  if (used != v.size()) return std::nullopt;
  return x;
}

/// Why to_int(v) refused v, for messages: "out of the 32-bit range" for a whole number too
/// large for an int ("99999999999"), else "not an integer".
inline const char* int_problem(const std::string& v) {
  const size_t sign = !v.empty() && (v[0] == '-' || v[0] == '+') ? 1 : 0;
  bool digits = v.size() > sign;
  for (size_t i = sign; i < v.size(); ++i) digits = digits && v[i] >= '0' && v[i] <= '9';
  return digits ? "out of the 32-bit range" : "not an integer";
}

/// Options as (name, value) pairs; a flag without a value gets "".
struct Args {
  std::vector<std::pair<std::string, std::string>> options;
  std::vector<std::string> positional;

  static Args parse(const std::vector<std::string>& argv, const std::vector<std::string>& flags_without_value = {}) {
    Args a;
    for (size_t i = 0; i < argv.size(); ++i) {
      const std::string& s = argv[i];
      if (s.rfind("--", 0) != 0) { a.positional.push_back(s); continue; }
      bool bare = false;
      for (const auto& f : flags_without_value) bare = bare || f == s;
      if (bare) { a.options.emplace_back(s, ""); continue; }
      SPW_CHECK(i + 1 < argv.size(), "option {} needs a value", s);
      a.options.emplace_back(s, argv[++i]);
    }
    return a;
  }
  bool has(const std::string& name) const {
    for (const auto& o : options) if (o.first == name) return true;
    return false;
  }
  std::string get(const std::string& name, const std::string& fallback = "") const {
    for (const auto& o : options) if (o.first == name) return o.second;
    return fallback;
  }
  int get_int(const std::string& name, int fallback) const {
    if (!has(name)) return fallback;
    const std::string v = get(name);
    const std::optional<int> x = to_int(v);
    SPW_CHECK(x.has_value(), "option {} = '{}': {}", name, v, int_problem(v));
    return *x;
  }
  /// Throws naming the first option not in `known`.
  void only(const std::vector<std::string>& known) const {
    for (const auto& o : options) {
      bool ok = false;
      for (const auto& k : known) ok = ok || k == o.first;
      SPW_CHECK(ok, "unknown option {}", o.first);
    }
  }
};

}  // namespace spw::cli
