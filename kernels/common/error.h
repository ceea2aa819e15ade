// spw::Error: the one exception type of the C++ API, and the checks that raise it.
//
// Every user-facing check names the bad argument and its value, e.g.
//   SPW_CHECK_ARG(head_dim == 64 || head_dim == 128, "head_dim", head_dim, "must be 64, 128 or 256");
// gives "decode_attention::plan: head_dim = 96: must be 64, 128 or 256".
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace spw {

/// The exception thrown by every Spillway C++ API on bad input or a failed CUDA call.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

/// Throws spw::Error with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace spw

/// Throws spw::Error("<fmt message>") unless cond holds.
#define SPW_CHECK(cond, ...)                     \
  do {                                           \
    if (!(cond)) ::spw::fail(__VA_ARGS__);       \
  } while (0)

/// Argument check whose message reads "<where>: <name> = <value>: <why>".
#define SPW_CHECK_ARG(cond, where, name, value, why)                             \
  do {                                                                           \
    if (!(cond)) ::spw::fail("{}: {} = {}: {}", where, name, value, why);         \
  } while (0)
