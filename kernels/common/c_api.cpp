#include "kernels/common/c_api.h"

#include "kernels/common/pinned.h"

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

struct spw_plan_arena {
  spw::PlanHostArena arena;
};

spw::PlanHostArena* spw::capi::arena_of(spw_plan_arena* a) { return a ? &a->arena : nullptr; }

extern "C" int spw_plan_arena_create(size_t reserve_bytes, spw_plan_arena** out) {
  return spw::capi::guarded([&] {
    SPW_CHECK_ARG(out != nullptr, "spw_plan_arena_create", "out", "null", "must point to an arena handle");
    *out = nullptr;
    *out = new spw_plan_arena{spw::PlanHostArena(reserve_bytes)};
  });
}

extern "C" int spw_plan_arena_reset(spw_plan_arena* a) {
  return spw::capi::guarded([&] {
    SPW_CHECK_ARG(a != nullptr, "spw_plan_arena_reset", "arena", "null", "create one with spw_plan_arena_create");
    a->arena.reset();
  });
}

extern "C" int spw_plan_arena_stats(const spw_plan_arena* a, size_t* capacity, size_t* used, int* allocations) {
  return spw::capi::guarded([&] {
    SPW_CHECK_ARG(a != nullptr, "spw_plan_arena_stats", "arena", "null", "create one with spw_plan_arena_create");
    if (capacity) *capacity = a->arena.capacity();
    if (used) *used = a->arena.used();
    if (allocations) *allocations = a->arena.allocations();
  });
}

extern "C" void spw_plan_arena_destroy(spw_plan_arena* a) { delete a; }
