#include "kernels/common/c_api.h"

namespace {
thread_local std::string g_last_error;
}

namespace spw::capi {
int set_error(int status, const std::string& message) {
  g_last_error = message;
  return status;
}
}  // namespace spw::capi

extern "C" const char* spw_last_error(void) { return g_last_error.c_str(); }
extern "C" const char* spw_version(void) { return "0.1.0"; }
