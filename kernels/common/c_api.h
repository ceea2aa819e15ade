/* Spillway C ABI: shared status codes and the thread-local last-error message.
 * Every spw_* function returns SPW_OK (0) or an error status; spw_last_error() then gives
 * the message of the spw::Error behind it (valid until the thread's next failing call).
 * Each kernel family declares its own entry points in kernels/<family>/c_api.h. */
#ifndef SPILLWAY_C_API_H
#define SPILLWAY_C_API_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum spw_status {
  SPW_OK = 0,
  SPW_ERROR_INVALID_ARGUMENT = 1, /* bad input: the message names the argument */
  SPW_ERROR_CUDA = 2,             /* a CUDA/cuBLAS call failed */
  SPW_ERROR_UNSUPPORTED = 3,      /* valid input this build/device cannot run */
  SPW_ERROR_INTERNAL = 4          /* anything else (a bug: please report) */
} spw_status;

/* Element types, same values as spw::DType. */
typedef enum spw_dtype { SPW_FP16 = 0, SPW_BF16 = 1, SPW_FP32 = 2 } spw_dtype;

/* Message of the last failed spw_* call on this thread ("" if none). */
const char* spw_last_error(void);

/* Library version, "major.minor.patch". */
const char* spw_version(void);

#ifdef __cplusplus
}  /* extern "C" */

#include <exception>
#include <string>

#include "kernels/common/error.h"

namespace spw::capi {

/// Records `message` as this thread's last error and returns `status`.
int set_error(int status, const std::string& message);

/// Runs `body` (a C++ API call), turning exceptions into a status + last-error message.
/// A message starting with "CUDA error"/"cuBLAS error" maps to SPW_ERROR_CUDA, one containing
/// "not supported"/"unsupported" to SPW_ERROR_UNSUPPORTED, any other spw::Error to
/// SPW_ERROR_INVALID_ARGUMENT.
template <typename F>
int guarded(F&& body) noexcept {
  try {
    body();
    return SPW_OK;
  } catch (const spw::Error& e) {
    std::string m = e.what();
    int status = SPW_ERROR_INVALID_ARGUMENT;
    if (m.rfind("CUDA error", 0) == 0 || m.rfind("cuBLAS error", 0) == 0) status = SPW_ERROR_CUDA;
    else if (m.find("not supported") != std::string::npos || m.find("unsupported") != std::string::npos)
      status = SPW_ERROR_UNSUPPORTED;
    return set_error(status, m);
  } catch (const std::exception& e) {
    return set_error(SPW_ERROR_INTERNAL, e.what());
  } catch (...) {
    return set_error(SPW_ERROR_INTERNAL, "unknown exception");
  }
}

}  // namespace spw::capi
#endif /* __cplusplus */

#endif /* SPILLWAY_C_API_H */
