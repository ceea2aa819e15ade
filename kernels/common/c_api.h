/* Spillway C ABI: shared status codes and the thread-local last-error message.
 * Every spw_* function returns SPW_OK (0) or an error status; spw_last_error() then gives
 * the message of the spw::Error behind it (valid until the thread's next failing call).
 * Each kernel family declares its own entry points in kernels/<family>/c_api.h. */
#ifndef SPILLWAY_C_API_H
#define SPILLWAY_C_API_H

#include <stddef.h>

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

/* Host memory that plans carve their metadata from (spw::PlanHostArena, kernels/common/
 * pinned.h): pinned when a CUDA device is present. Planning every step with a fresh plan costs
 * a cudaHostAlloc, and destroying it a device-synchronising cudaFreeHost; with an arena passed
 * to the *_plan_in_arena functions, steady-state planning allocates no pinned memory. A plan
 * keeps the block it lives in alive (destroy plans and arena in any order). Reset the arena
 * only when no plan made from it since the previous reset will run again (or is captured in
 * a graph that will be replayed) and none of their copies is in flight. */
typedef struct spw_plan_arena spw_plan_arena;
/* An arena with reserve_bytes ready (0: grows on first use), into *out. */
int spw_plan_arena_create(size_t reserve_bytes, spw_plan_arena** out);
/* Reuses the arena's memory from its start (see above for when that is safe). */
int spw_plan_arena_reset(spw_plan_arena* arena);
/* Any of capacity / used / allocations may be NULL. */
int spw_plan_arena_stats(const spw_plan_arena* arena, size_t* capacity, size_t* used, int* allocations);
/* Drops the caller's reference (NULL is a no-op); blocks live on while plans use them. */
void spw_plan_arena_destroy(spw_plan_arena* arena);

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

namespace spw {
class PlanHostArena;
namespace capi {
/// The arena behind a handle (nullptr for nullptr), for the families' *_plan_in_arena.
PlanHostArena* arena_of(spw_plan_arena* arena);
}  // namespace capi
}  // namespace spw
#endif /* __cplusplus */

#endif /* SPILLWAY_C_API_H */
