// spw-sim core: fibers and their scheduler, the barriers, cp.async, the matrix instructions,
// and the CUDA runtime API functions Spillway calls (see cuda_sim.h for what is modelled).
#include "tests/sim/cuda_sim.h"

#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>
#include <vector>

#if !defined(__x86_64__)
#error "spw-sim's fiber switch is written for x86-64"
#endif

// ---- fiber switch (x86-64 System V): saves the callee-saved registers on the old stack,
// stores its pointer, and resumes from the new one. The floating-point control state (MXCSR,
// x87 control word) is shared by all fibers: kernels do not change it.
extern "C" void spw_sim_switch(void** save_sp, void* load_sp);
extern "C" void spw_sim_trampoline();
extern "C" [[noreturn]] void spw_sim_fiber_main(spw::sim::Thread* t);
asm(R"(
.text
.globl spw_sim_switch
.type spw_sim_switch,@function
spw_sim_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
.size spw_sim_switch,.-spw_sim_switch
.globl spw_sim_trampoline
.type spw_sim_trampoline,@function
spw_sim_trampoline:
    movq %rbx, %rdi
    andq $-16, %rsp
    call spw_sim_fiber_main
    ud2
.size spw_sim_trampoline,.-spw_sim_trampoline
)");

namespace spw::sim {

Thread* g_thread = nullptr;
Block* g_block = nullptr;

// Dynamic shared memory per block, as on an H100: a kernel may use kSmemDefault bytes, and up to
// kSmemOptInMax once it raised cudaFuncAttributeMaxDynamicSharedMemorySize.
constexpr size_t kSmemDefault = 48 * 1024, kSmemOptInMax = 227 * 1024;

namespace {

enum State { kRunnable = 0, kBlockWait = 1, kWarpWait = 2, kDone = 3, kGridWait = 4 };
constexpr size_t kStackBytes = 64 * 1024;

struct WarpState {
  unsigned arrived = 0, mask = 0, live = 0;
  unsigned mma_done = ~0u;  // the epoch of the matrix operation whose result `scratch` holds
  float scratch[1024];
};

// A byte range of device memory (sorted, disjoint lists of them: what a kernel changed).
struct Range {
  unsigned char* p;
  size_t n;
};

struct Launch {
  const std::function<void()>* body = nullptr;
  std::vector<Thread> threads;
  std::vector<WarpState> warps;
  int block_arrived = 0, block_live = 0;
  void* sched_sp = nullptr;
  std::string error;
  // A programmatic launch under the PDL check: what the previous kernel in the stream changed,
  // 0xff in the running block until `released` (its griddepcontrol.wait returned), and the
  // bytes that were there (restored then).
  const std::vector<Range>* pdl_ranges = nullptr;
  bool released = true;
  std::vector<unsigned char> pdl_saved;
};
Launch* g_launch = nullptr;

// Stacks are mapped once and reused by every launch (threads x 64 KB, lazily committed).
unsigned char* g_stacks = nullptr;
size_t g_stack_count = 0;
unsigned char* stack_top(size_t i) {
  if (i >= g_stack_count) {
    const size_t n = std::max<size_t>(1024, i + 1);
    void* p = mmap(nullptr, n * kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) { std::fprintf(stderr, "spw-sim: cannot map fiber stacks\n"); std::abort(); }
    if (g_stacks) munmap(g_stacks, g_stack_count * kStackBytes);
    g_stacks = static_cast<unsigned char*>(p);
    g_stack_count = n;
  }
  return g_stacks + (i + 1) * kStackBytes;
}

void yield() { spw_sim_switch(&g_thread->sp, g_launch->sched_sp); }

void complete_copies(Thread& t, size_t upto) {
  for (size_t i = 0; i < upto; ++i) {
    const Thread::Copy& c = t.copies[i];
    if (c.poison) std::memset(c.dst, 0xff, 16);
    else if (c.valid) std::memcpy(c.dst, c.src, 16);
    else std::memset(c.dst, 0, 16);
  }
  t.copies.erase(t.copies.begin(), t.copies.begin() + static_cast<std::ptrdiff_t>(upto));
}

std::string where(const Thread& t) {
  return "block (" + std::to_string(g_block->bid.x) + "," + std::to_string(g_block->bid.y) + "," +
         std::to_string(g_block->bid.z) + ") thread " + std::to_string(t.linear);
}

// __syncthreads completes when every live thread of the block has arrived (a thread that ends
// stops counting).
void release_block_if_complete() {
  Launch& L = *g_launch;
  if (L.block_arrived == 0 || L.block_arrived != L.block_live) return;
  for (Thread& o : L.threads)
    if (o.state == kBlockWait) o.state = kRunnable;
  L.block_arrived = 0;
}

void release_warp(WarpState& w, unsigned warp) {
  for (Thread& o : g_launch->threads)
    if (o.warp == warp && o.state == kWarpWait) o.state = kRunnable;
  w.arrived = 0;
  w.mask = 0;
  ++g_block->warp_epoch[warp];
}

// A lane of `warp` ended: a pending warp collective can no longer complete if it named it.
void lane_ended(Thread& t) {
  WarpState& w = g_launch->warps[t.warp];
  w.live &= ~(1u << t.lane);
  if (w.arrived && (w.mask >> t.lane & 1u))
    kernel_error("lane " + std::to_string(t.lane) + " of warp " + std::to_string(t.warp) +
                 " exited while the other lanes of its mask wait in a warp collective");
}

}  // namespace

[[noreturn]] void kernel_error(const std::string& msg) {
  if (g_launch->error.empty()) g_launch->error = msg + " [" + where(*g_thread) + "]";
  g_thread->state = kDone;
  spw_sim_switch(&g_thread->sp, g_launch->sched_sp);
  std::abort();  // never resumed
}

void block_barrier() {
  g_thread->state = kBlockWait;
  ++g_launch->block_arrived;
  release_block_if_complete();
  yield();
}

void warp_barrier(unsigned mask) {
  Thread& t = *g_thread;
  WarpState& w = g_launch->warps[t.warp];
  const unsigned lanes_here = (g_launch->threads.size() - t.warp * kWarp) >= kWarp
                                  ? 0xffffffffu
                                  : (1u << (g_launch->threads.size() - t.warp * kWarp)) - 1u;
  mask &= lanes_here;  // lanes beyond a partial last warp do not exist
  if (!(mask >> t.lane & 1u)) kernel_error("warp collective with a mask that does not include the calling lane");
  if (w.arrived == 0) w.mask = mask;
  else if (w.mask != mask) kernel_error("warp collectives with different masks are in flight in one warp");
  if (mask & ~w.live & ~(1u << t.lane))
    kernel_error("warp collective names lanes that have exited (mask " + std::to_string(mask) + ")");
  w.arrived |= 1u << t.lane;
  t.state = kWarpWait;
  if (w.arrived == mask) release_warp(w, t.warp);
  yield();
}

namespace {
// Whether [p, p + n) overlaps a range of the sorted, disjoint `ranges`.
bool overlaps(const std::vector<Range>& ranges, const void* p, size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  auto it = std::upper_bound(ranges.begin(), ranges.end(), b, [](const unsigned char* q, const Range& r) { return q < r.p; });
  if (it != ranges.end() && it->p < b + n) return true;
  return it != ranges.begin() && std::prev(it)->p + std::prev(it)->n > b;
}
}  // namespace

void cp_async_issue(void* dst, const void* src, bool valid) {
  Thread& t = *g_thread;
  if (reinterpret_cast<uintptr_t>(dst) % 16 || (valid && reinterpret_cast<uintptr_t>(src) % 16))
    kernel_error("cp.async of 16 bytes with a misaligned address");
  const Launch& L = *g_launch;
  const bool early = valid && L.pdl_ranges && !L.released && overlaps(*L.pdl_ranges, src, 16);
  t.copies.push_back({dst, src, valid, early});
}
void cp_async_commit() {
  Thread& t = *g_thread;
  if (t.n_groups == 64) kernel_error("more than 64 cp.async groups in flight");
  t.group_end[t.n_groups++] = static_cast<int>(t.copies.size());
}
void cp_async_wait(int keep) {
  Thread& t = *g_thread;
  if (t.n_groups <= keep) return;
  const int done = t.n_groups - keep;
  const int upto = t.group_end[done - 1];
  complete_copies(t, static_cast<size_t>(upto));
  for (int g = done; g < t.n_groups; ++g) t.group_end[g - done] = t.group_end[g] - upto;
  t.n_groups = keep;
}

namespace {
// The previous kernel finishes, for the running block of a programmatic launch: what it changed
// must still read 0xff (the block wrote none of it before its wait) and gets its bytes back.
void release_grid(Launch& L) {
  size_t at = 0, written = 0;
  const unsigned char* first = nullptr;
  for (const Range& r : *L.pdl_ranges) {
    for (size_t i = 0; i < r.n; ++i)
      if (r.p[i] != 0xff && written++ == 0) first = r.p + i;
    std::memcpy(r.p, L.pdl_saved.data() + at, r.n);
    at += r.n;
  }
  L.released = true;
  if (written && L.error.empty()) {
    char addr[32];
    std::snprintf(addr, sizeof(addr), "%p", static_cast<const void*>(first));
    L.error = "a programmatic launch wrote " + std::to_string(written) + " byte(s) (the first at " + addr +
              ") that the previous kernel in the stream wrote, before griddepcontrol.wait (spw::pdl_wait) [block (" +
              std::to_string(g_block->bid.x) + "," + std::to_string(g_block->bid.y) + "," +
              std::to_string(g_block->bid.z) + ")]";
  }
}
}  // namespace

void grid_dependency_wait() {
  if (g_launch->released) return;  // not a checked programmatic launch, or the wait is over
  g_thread->state = kGridWait;
  yield();
}

namespace {
uint64_t g_block_serial = 0;                                // blocks started so far
std::map<const void*, uint64_t> g_static_smem_fresh_in;    // static shared variable -> its block
}  // namespace

void fresh_static_smem(void* p, size_t bytes) {
  uint64_t& in = g_static_smem_fresh_in[p];
  if (in == g_block_serial) return;  // this block has refilled it already
  in = g_block_serial;
  std::memset(p, 0xff, bytes);
}

bool claim_warp_result(unsigned n) {
  WarpState& w = g_launch->warps[g_thread->warp];
  if (w.mma_done == n) return false;
  w.mma_done = n;
  return true;
}
float* warp_scratch() { return g_launch->warps[g_thread->warp].scratch; }

void ldmatrix(unsigned* r, int count, bool trans, const void* addr) {
  const unsigned lane = lane_id();
  if (reinterpret_cast<uintptr_t>(addr) % 16) kernel_error("ldmatrix row address not 16-byte aligned");
  const unsigned e = warp_epoch();
  std::memcpy(slot(e, lane), &addr, sizeof(addr));
  warp_barrier(0xffffffffu);
  const unsigned g = lane >> 2, t = lane & 3;
  for (int i = 0; i < count; ++i) {
    auto row = [&](unsigned j) {
      const unsigned char* p;
      std::memcpy(&p, slot(e, static_cast<unsigned>(8 * i) + j), sizeof(p));
      return p;
    };
    if (!trans) {
      std::memcpy(&r[i], row(g) + 4 * t, 4);
    } else {
      uint16_t lo, hi;
      std::memcpy(&lo, row(2 * t) + 2 * g, 2);
      std::memcpy(&hi, row(2 * t + 1) + 2 * g, 2);
      r[i] = static_cast<unsigned>(lo) | static_cast<unsigned>(hi) << 16;
    }
  }
}

namespace {
float b16(unsigned reg, int half_index, bool bf16) {
  const uint16_t bits = static_cast<uint16_t>(reg >> (16 * half_index));
  if (bf16) {
    const uint32_t u = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  __half_raw raw;
  raw.x = bits;
  return __half2float(__half(raw));
}
struct MmaLane { unsigned a[4], b[2]; float c[4]; };
}  // namespace

void mma_m16n8k16(float* d, const unsigned* a, const unsigned* b, bool bf16) {
  Thread& self = *g_thread;
  const unsigned lane = self.lane, e = warp_epoch();
  MmaLane mine{{a[0], a[1], a[2], a[3]}, {b[0], b[1]}, {d[0], d[1], d[2], d[3]}};
  std::memcpy(slot(e, lane), &mine, sizeof(mine));
  warp_barrier(0xffffffffu);
  float* out = warp_scratch();
  if (claim_warp_result(e)) {  // the first lane to resume computes the whole warp's result
    // Rebuild A (16x16, row) and B (16x8, col) from the fragments of all lanes (PTX layout).
    float A[16][16], B[16][8];
    for (unsigned l = 0; l < 32; ++l) {
      MmaLane f;
      std::memcpy(&f, slot(e, l), sizeof(f));
      const unsigned g = l >> 2, t = l & 3;
      for (int h = 0; h < 2; ++h) {
        A[g][2 * t + h] = b16(f.a[0], h, bf16);
        A[g + 8][2 * t + h] = b16(f.a[1], h, bf16);
        A[g][2 * t + 8 + h] = b16(f.a[2], h, bf16);
        A[g + 8][2 * t + 8 + h] = b16(f.a[3], h, bf16);
        B[2 * t + h][g] = b16(f.b[0], h, bf16);
        B[2 * t + 8 + h][g] = b16(f.b[1], h, bf16);
      }
    }
    for (unsigned l = 0; l < 32; ++l) {
      MmaLane f;
      std::memcpy(&f, slot(e, l), sizeof(f));
      const unsigned g = l >> 2, t = l & 3;
      for (int i = 0; i < 4; ++i) {
        const unsigned row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
        float acc = f.c[i];
        for (int k = 0; k < 16; ++k) acc += A[row][k] * B[k][col];
        out[4 * l + i] = acc;
      }
    }
  }
  for (int i = 0; i < 4; ++i) d[i] = out[4 * lane + i];
}

}  // namespace spw::sim

extern "C" [[noreturn]] void spw_sim_fiber_main(spw::sim::Thread* t) {
  using namespace spw::sim;
  (*g_launch->body)();
  complete_copies(*t, t->copies.size());
  t->state = kDone;
  --g_launch->block_live;
  lane_ended(*t);
  release_block_if_complete();
  spw_sim_switch(&t->sp, g_launch->sched_sp);
  std::abort();
}

// ---- launches, streams and graphs ---------------------------------------------------------
namespace spw::sim {
namespace {

cudaError_t g_sticky = cudaSuccess;  // the error of a failed launch, as a GPU's is sticky
cudaError_t g_last = cudaSuccess;
std::string g_last_message;

cudaError_t set_error(cudaError_t e, const std::string& msg = {}) {
  if (e != cudaSuccess) {
    g_last = e;
    if (!msg.empty()) {
      g_last_message = msg;
      std::fprintf(stderr, "spw-sim: %s\n", msg.c_str());
    }
  }
  return e;
}

bool reverse_order() {
  static const bool r = [] {
    const char* e = std::getenv("SPW_SIM_REVERSE");
    return e && *e && *e != '0';
  }();
  return r;
}

struct BlockOrderSetting {
  BlockOrder order = BlockOrder::forward;
  uint64_t seed = 0;
};

// SPW_SIM_BLOCKS: forward (default), reverse, shuffle or shuffle:SEED; anything else is refused
// (a typo must not quietly test the default order).
BlockOrderSetting block_order_from_env() {
  BlockOrderSetting s;
  const char* e = std::getenv("SPW_SIM_BLOCKS");
  if (!e || !*e) return s;
  const std::string v = e;
  if (v == "forward") return s;
  if (v == "reverse") {
    s.order = BlockOrder::reverse;
    return s;
  }
  if (v == "shuffle" || v.rfind("shuffle:", 0) == 0) {
    s.order = BlockOrder::shuffled;
    if (v.size() > 8) {
      char* end = nullptr;
      s.seed = std::strtoull(v.c_str() + 8, &end, 10);
      if (*end == '\0' && v[8] != '-') return s;
    } else {
      return s;
    }
  }
  std::fprintf(stderr, "spw-sim: SPW_SIM_BLOCKS = '%s': expected forward, reverse, shuffle or shuffle:SEED\n", e);
  std::exit(2);
}

BlockOrderSetting& block_order_setting() {
  static BlockOrderSetting s = block_order_from_env();
  return s;
}

// splitmix64: the shuffle's generator (the same permutation on every platform for a seed).
uint64_t mix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The linear block indices (x fastest) of a grid of `n` blocks in the order they run. A shuffle
// draws from the seed and the launch's sequence number, so consecutive launches of one grid
// differ while a run stays reproducible.
void block_sequence(uint64_t n, std::vector<uint64_t>& seq) {
  static uint64_t launches = 0;
  const BlockOrderSetting& s = block_order_setting();
  seq.resize(n);
  for (uint64_t i = 0; i < n; ++i) seq[i] = s.order == BlockOrder::reverse ? n - 1 - i : i;
  if (s.order != BlockOrder::shuffled) return;
  uint64_t state = s.seed ^ (0xd1b54a32d192ed03ull * ++launches);
  for (uint64_t i = n; i > 1; --i) std::swap(seq[i - 1], seq[mix64(state) % i]);  // Fisher-Yates
}

// Runs one block to completion; returns the launch error ("" when none).
std::string run_block(Launch& L, Block& blk, unsigned nthreads) {
  L.threads.assign(nthreads, Thread{});
  L.warps.assign((nthreads + kWarp - 1) / kWarp, WarpState{});
  L.block_arrived = 0;
  L.block_live = static_cast<int>(nthreads);
  for (unsigned i = 0; i < nthreads; ++i) {
    Thread& t = L.threads[i];
    t.linear = i;
    t.lane = i % kWarp;
    t.warp = i / kWarp;
    t.tid = make_uint3(i % blk.bdim.x, (i / blk.bdim.x) % blk.bdim.y, i / (blk.bdim.x * blk.bdim.y));
    L.warps[t.warp].live |= 1u << t.lane;
    // initial frame, popped by spw_sim_switch: r15..r12, rbx = thread, rbp, return address
    auto* top = reinterpret_cast<uint64_t*>(stack_top(i));
    uint64_t* sp = top - 8;  // 64 bytes: 7 words used, the top one keeps the 16-byte alignment
    sp[0] = sp[1] = sp[2] = sp[3] = 0;
    sp[4] = reinterpret_cast<uint64_t>(&t);
    sp[5] = 0;
    sp[6] = reinterpret_cast<uint64_t>(&spw_sim_trampoline);
    t.sp = sp;
  }
  const bool rev = reverse_order();
  for (;;) {
    bool ran = false, all_done = true;
    for (unsigned k = 0; k < nthreads; ++k) {
      Thread& t = L.threads[rev ? nthreads - 1 - k : k];
      if (t.state == kDone) continue;
      all_done = false;
      if (t.state != kRunnable) continue;
      g_thread = &t;
      spw_sim_switch(&L.sched_sp, t.sp);
      ran = true;
      if (!L.error.empty()) break;
    }
    if (!L.error.empty()) break;
    if (all_done) break;
    if (!ran && !L.released) {
      // Every thread waits (or has ended): only the previous kernel's end lets them go on.
      bool grid_wait = false;
      for (Thread& t : L.threads)
        if (t.state == kGridWait) grid_wait = true, t.state = kRunnable;
      if (grid_wait) {
        release_grid(L);
        if (!L.error.empty()) break;
        continue;
      }
    }
    if (!ran) {
      int at_block = 0, at_warp = 0;
      for (const Thread& t : L.threads) at_block += t.state == kBlockWait, at_warp += t.state == kWarpWait;
      L.error = "deadlock: " + std::to_string(at_block) + " threads wait at __syncthreads and " +
                std::to_string(at_warp) + " at warp collectives, none can proceed (block " +
                std::to_string(blk.bid.x) + "," + std::to_string(blk.bid.y) + "," + std::to_string(blk.bid.z) + ")";
      break;
    }
  }
  g_thread = nullptr;
  return L.error;
}

// A recorded stream operation; `kind` stands for the node type a GPU graph would hold (a kernel
// or a copy/memset), which cudaGraphExecUpdate may not change.
enum class OpKind { kernel, copy };
struct Op { std::function<void()> fn; OpKind kind = OpKind::copy; };
struct Capture { bool active = false; std::vector<Op> ops; };
std::mutex g_mu;
std::vector<std::pair<cudaStream_t, Capture>> g_captures;  // by stream
bool g_any_capture = false;

Capture* capture_of(cudaStream_t s) {
  for (auto& [st, c] : g_captures)
    if (c.active && st == s) return &c;
  return nullptr;
}
// Where work for `s` goes while a capture is active: into that capture, or (legacy default
// stream, which would join every capturing stream) nowhere: the GPU refuses it.
enum class Route { run, record, refuse };
Route route(cudaStream_t s, Capture** c) {
  *c = g_any_capture ? capture_of(s) : nullptr;
  if (*c) return Route::record;
  return g_any_capture && s == nullptr ? Route::refuse : Route::run;
}

// ---- the PDL check: device allocations, and what each stream's last kernel changed --------
std::mutex g_pdl_mu;
std::map<unsigned char*, size_t> g_allocs;                      // cudaMalloc'd, by address
std::map<cudaStream_t, std::vector<Range>> g_last_kernel_writes;  // by stream

bool pdl_check_from_env() {
  const char* e = std::getenv("SPW_SIM_PDL");
  return e && *e && *e != '0';
}
std::atomic<bool> g_pdl_check{pdl_check_from_env()};

// Device memory before a kernel: each allocation and a copy of its bytes.
struct Snapshot {
  struct Alloc { unsigned char* p; size_t n; std::vector<unsigned char> bytes; };
  std::vector<Alloc> allocs;
};
Snapshot take_snapshot() {
  std::lock_guard<std::mutex> lock(g_pdl_mu);
  Snapshot s;
  for (const auto& [p, n] : g_allocs) s.allocs.push_back({p, n, std::vector<unsigned char>(p, p + n)});
  return s;
}
// The bytes that differ from `before`, as sorted ranges: changed bytes up to 8 apart share a
// range, rounded out to 4-byte words (a float whose new bits share a byte with the old still
// reads as 0xff in full).
std::vector<Range> changed_since(const Snapshot& before) {
  std::vector<Range> out;
  for (const Snapshot::Alloc& a : before.allocs) {
    const unsigned char *p = a.p, *c = a.bytes.data();
    const size_t first = out.size();  // ranges never span two allocations
    size_t i = 0;
    while (i < a.n) {
      if (i % 64 == 0 && i + 64 <= a.n && std::memcmp(p + i, c + i, 64) == 0) {
        i += 64;
        continue;
      }
      if (p[i] == c[i]) {
        ++i;
        continue;
      }
      size_t last = i;
      for (size_t k = i + 1; k < a.n && k - last <= 8; ++k)
        if (p[k] != c[k]) last = k;
      const size_t lo = i & ~size_t{3}, hi = std::min(a.n, (last + 4) & ~size_t{3});
      if (out.size() > first && out.back().p + out.back().n >= a.p + lo) out.back().n = static_cast<size_t>(a.p + hi - out.back().p);
      else out.push_back({a.p + lo, hi - lo});
      i = hi;
    }
  }
  return out;
}
// A copy or memset in `stream` (or, with nullptr, a synchronous one) ends the overlap.
void forget_kernel_writes(cudaStream_t stream, bool all) {
  std::lock_guard<std::mutex> lock(g_pdl_mu);
  if (all) g_last_kernel_writes.clear();
  else g_last_kernel_writes.erase(stream);
}

// Before each block of a checked programmatic launch: the previous kernel's bytes become 0xff.
void hold_back_previous_writes(Launch& L) {
  size_t total = 0;
  for (const Range& r : *L.pdl_ranges) total += r.n;
  L.pdl_saved.resize(total);
  size_t at = 0;
  for (const Range& r : *L.pdl_ranges) {
    std::memcpy(L.pdl_saved.data() + at, r.p, r.n);
    std::memset(r.p, 0xff, r.n);
    at += r.n;
  }
  L.released = false;
}

void execute_launch(dim3 grid, dim3 block, size_t smem, const std::function<void()>& body, cudaStream_t stream,
                    bool pdl) {
  if (g_sticky != cudaSuccess) return;
  const unsigned nthreads = block.x * block.y * block.z;
  if (nthreads == 0 || nthreads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535) {
    set_error(cudaErrorInvalidConfiguration, "invalid launch configuration: grid (" + std::to_string(grid.x) + "," +
                                                 std::to_string(grid.y) + "," + std::to_string(grid.z) + ") block " +
                                                 std::to_string(nthreads) + " threads");
    return;
  }
  if (smem > kSmemOptInMax) {
    set_error(cudaErrorInvalidValue, "dynamic shared memory of " + std::to_string(smem) + " bytes exceeds 227 KB");
    return;
  }
  std::vector<unsigned char> dyn(smem + 128);
  auto* dyn_ptr = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(dyn.data()) + 127) & ~uintptr_t{127});
  std::vector<unsigned char> slots(((nthreads + kWarp - 1) / kWarp) * 2 * kWarp * kSlotBytes);
  Launch L;
  L.body = &body;
  const bool track = g_pdl_check.load();
  Snapshot before;
  std::vector<Range> previous;  // what the previous kernel in the stream changed
  if (track) {
    before = take_snapshot();
    std::lock_guard<std::mutex> lock(g_pdl_mu);
    const auto it = g_last_kernel_writes.find(stream);
    if (pdl && it != g_last_kernel_writes.end()) previous = it->second;
  }
  if (!previous.empty()) L.pdl_ranges = &previous;
  Block blk;
  blk.bdim = block;
  blk.gdim = grid;
  blk.dyn_smem = dyn_ptr;
  blk.dyn_bytes = smem;
  blk.slots = reinterpret_cast<unsigned char(*)[2][kWarp][kSlotBytes]>(slots.data());
  std::vector<unsigned> epochs((nthreads + kWarp - 1) / kWarp);
  blk.warp_epoch = epochs.data();
  Launch* outer_launch = g_launch;
  Block* outer_block = g_block;
  g_launch = &L;
  g_block = &blk;
  std::string err;
  std::vector<uint64_t> order;
  block_sequence(static_cast<uint64_t>(grid.x) * grid.y * grid.z, order);
  for (size_t i = 0; i < order.size() && err.empty(); ++i) {
    const uint64_t b = order[i], xy = static_cast<uint64_t>(grid.x) * grid.y;
    blk.bid = make_uint3(static_cast<unsigned>(b % grid.x), static_cast<unsigned>(b % xy / grid.x),
                         static_cast<unsigned>(b / xy));
    std::fill(epochs.begin(), epochs.end(), 0u);
    std::memset(dyn_ptr, 0xff, smem);
    ++g_block_serial;  // (starts at 1: a variable's first entry, 0, is never this block's)
    if (L.pdl_ranges) hold_back_previous_writes(L);
    err = run_block(L, blk, nthreads);
    if (!L.released) {  // the block ended (or failed) without waiting: the bytes come back
      release_grid(L);
      if (err.empty()) err = L.error;
    }
  }
  if (track) {
    std::vector<Range> changed = changed_since(before);
    std::lock_guard<std::mutex> lock(g_pdl_mu);
    g_last_kernel_writes[stream] = std::move(changed);
  }
  g_launch = outer_launch;
  g_block = outer_block;
  if (!err.empty()) {
    g_sticky = cudaErrorLaunchFailure;
    set_error(cudaErrorLaunchFailure, "kernel failed: " + err);
  }
}

}  // namespace

void set_block_order(BlockOrder order, uint64_t seed) { block_order_setting() = {order, seed}; }
void set_pdl_check(bool on) {
  g_pdl_check = on;
  forget_kernel_writes(nullptr, true);
}
bool pdl_check() { return g_pdl_check.load(); }
BlockOrder block_order() { return block_order_setting().order; }
uint64_t block_order_seed() { return block_order_setting().seed; }

void reset_errors() {
  g_sticky = g_last = cudaSuccess;
  g_last_message.clear();
}

namespace {
// cudaFuncAttributeMaxDynamicSharedMemorySize per kernel (absent: the default 48 KB).
std::map<const void*, int> g_max_dynamic_smem;
}  // namespace

void launch(const void* func, dim3 grid, dim3 block, size_t smem, cudaStream_t stream, std::function<void()> body,
            bool pdl) {
  std::unique_lock<std::mutex> lock(g_mu);
  // A GPU refuses more dynamic shared memory than the kernel opted in to, at the launch.
  const auto opt_in = g_max_dynamic_smem.find(func);
  const size_t limit = opt_in == g_max_dynamic_smem.end() ? kSmemDefault : static_cast<size_t>(opt_in->second);
  if (smem <= kSmemOptInMax && smem > limit) {
    set_error(cudaErrorInvalidValue, "dynamic shared memory of " + std::to_string(smem) + " bytes exceeds the kernel's " +
                                         std::to_string(limit) +
                                         " (opt in with cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize))");
    return;
  }
  Capture* c;
  switch (route(stream, &c)) {
    case Route::record:
      c->ops.push_back({[grid, block, smem, body = std::move(body), stream, pdl] {
                          execute_launch(grid, block, smem, body, stream, pdl);
                        },
                        OpKind::kernel});
      return;
    case Route::refuse:
      set_error(cudaErrorStreamCaptureImplicit, "kernel launched on the legacy default stream during a capture");
      return;
    case Route::run:
      lock.unlock();
      execute_launch(grid, block, smem, body, stream, pdl);
  }
}

namespace {
// Runs `fn` now, or records it when `stream` is being captured (a copy or memset: the next
// kernel in the stream waits for it, so no kernel overlaps one before it).
cudaError_t enqueue(cudaStream_t stream, std::function<void()> op) {
  std::function<void()> fn = [op = std::move(op), stream] {
    op();
    forget_kernel_writes(stream, false);
  };
  std::unique_lock<std::mutex> lock(g_mu);
  Capture* c;
  switch (route(stream, &c)) {
    case Route::record: c->ops.push_back({std::move(fn), OpKind::copy}); return cudaSuccess;
    case Route::refuse:
      return set_error(cudaErrorStreamCaptureImplicit, "copy or memset on the legacy default stream during a capture");
    case Route::run: break;
  }
  lock.unlock();
  fn();
  return cudaSuccess;
}
// Calls that a GPU refuses while a capture is in progress (they would synchronise or allocate).
bool capturing() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_any_capture;
}
cudaError_t refuse_in_capture(const char* what) {
  return set_error(cudaErrorStreamCaptureUnsupported,
                   std::string(what) + " called while a stream is being captured into a CUDA graph");
}
std::atomic<uint64_t> g_allocation_calls{0};
}  // namespace
uint64_t allocation_calls() { return g_allocation_calls.load(); }
}  // namespace spw::sim

// ---- CUDA runtime API ---------------------------------------------------------------------
using namespace spw::sim;

struct CUstream_st { int id; };
struct CUevent_st { int id; };
struct CUgraph_st { std::vector<Op> ops; };
struct CUgraphExec_st { std::vector<Op> ops; };

extern "C" {

cudaError_t cudaGetDeviceCount(int* count) { *count = 1; return cudaSuccess; }
cudaError_t cudaGetDevice(int* device) { *device = 0; return cudaSuccess; }
cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : set_error(cudaErrorInvalidDevice, "cudaSetDevice(" + std::to_string(device) + ")");
}
cudaError_t cudaDeviceSynchronize(void) {
  if (capturing()) return refuse_in_capture("cudaDeviceSynchronize");
  forget_kernel_writes(nullptr, true);  // a kernel launched after a wait overlaps nothing
  return g_sticky;
}
cudaError_t cudaGetLastError(void) {
  const cudaError_t e = g_last;
  g_last = g_sticky;
  return e;
}
cudaError_t cudaPeekAtLastError(void) { return g_last; }
const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    case cudaErrorGraphExecUpdateFailure: return "cudaErrorGraphExecUpdateFailure";
    default: return "cudaError(sim)";
  }
}
const char* cudaGetErrorString(cudaError_t e) {
  if (e == cudaErrorLaunchFailure && !g_last_message.empty()) return g_last_message.c_str();
  return cudaGetErrorName(e);
}
cudaError_t cudaRuntimeGetVersion(int* v) { *v = CUDART_VERSION; return cudaSuccess; }
cudaError_t cudaDriverGetVersion(int* v) { *v = CUDART_VERSION; return cudaSuccess; }

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  if (device != 0) return set_error(cudaErrorInvalidDevice);
  *p = cudaDeviceProp{};
  std::snprintf(p->name, sizeof(p->name), "spw-sim (H100-shaped)");
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = 132;
  p->sharedMemPerBlock = spw::sim::kSmemDefault;
  p->sharedMemPerBlockOptin = spw::sim::kSmemOptInMax;
  p->sharedMemPerMultiprocessor = 228 * 1024;
  p->l2CacheSize = 50 * 1024 * 1024;
  p->totalGlobalMem = size_t{80} << 30;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsPerMultiProcessor = 2048;
  p->regsPerBlock = 65536;
  p->regsPerMultiprocessor = 65536;
  p->warpSize = 32;
  p->memoryBusWidth = 5120;
  p->maxGridSize[0] = 0x7fffffff;
  p->maxGridSize[1] = p->maxGridSize[2] = 65535;
  p->maxThreadsDim[0] = p->maxThreadsDim[1] = 1024;
  p->maxThreadsDim[2] = 64;
  p->totalConstMem = 65536;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  cudaDeviceProp p;
  if (cudaGetDeviceProperties(&p, device) != cudaSuccess) return cudaErrorInvalidDevice;
  switch (attr) {
    case cudaDevAttrMultiProcessorCount: *value = p.multiProcessorCount; break;
    case cudaDevAttrComputeCapabilityMajor: *value = p.major; break;
    case cudaDevAttrComputeCapabilityMinor: *value = p.minor; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = static_cast<int>(p.sharedMemPerBlockOptin); break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = static_cast<int>(p.sharedMemPerBlock); break;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor: *value = static_cast<int>(p.sharedMemPerMultiprocessor); break;
    case cudaDevAttrL2CacheSize: *value = p.l2CacheSize; break;
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
    case cudaDevAttrWarpSize: *value = 32; break;
    default: *value = 0; break;
  }
  return cudaSuccess;
}
cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;
  if (value < 0 || static_cast<size_t>(value) > spw::sim::kSmemOptInMax) return set_error(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(spw::sim::g_mu);
  spw::sim::g_max_dynamic_smem[func] = value;
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
  *free_bytes = size_t{64} << 30;
  *total = size_t{80} << 30;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  if (capturing()) return refuse_in_capture("cudaMalloc");
  g_allocation_calls.fetch_add(1);
  // exactly `bytes` (256-byte aligned, as cudaMalloc's): under AddressSanitizer a kernel that
  // reads or writes past the end of a buffer is caught
  *p = nullptr;
  if (bytes && posix_memalign(p, 256, bytes) != 0) return set_error(cudaErrorMemoryAllocation);
  if (*p) {
    std::memset(*p, 0xa5, bytes);  // device memory starts as garbage
    std::lock_guard<std::mutex> lock(g_pdl_mu);
    g_allocs[static_cast<unsigned char*>(*p)] = bytes;
  }
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  if (capturing()) return refuse_in_capture("cudaFree");
  if (p) {
    std::lock_guard<std::mutex> lock(g_pdl_mu);
    auto* b = static_cast<unsigned char*>(p);
    const auto it = g_allocs.find(b);
    if (it != g_allocs.end()) {  // a kernel's writes into freed memory are no longer its output
      for (auto& [stream, ranges] : g_last_kernel_writes)
        ranges.erase(std::remove_if(ranges.begin(), ranges.end(),
                                    [&](const Range& r) { return r.p >= b && r.p < b + it->second; }),
                     ranges.end());
      g_allocs.erase(it);
    }
  }
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned int) {
  if (capturing()) return refuse_in_capture("cudaHostAlloc");
  g_allocation_calls.fetch_add(1);
  *p = std::aligned_alloc(256, (std::max<size_t>(bytes, 1) + 255) / 256 * 256);
  return *p ? cudaSuccess : set_error(cudaErrorMemoryAllocation);
}
cudaError_t cudaMallocHost(void** p, size_t bytes) { return cudaHostAlloc(p, bytes, 0); }
cudaError_t cudaFreeHost(void* p) {
  if (capturing()) return refuse_in_capture("cudaFreeHost");
  std::free(p);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind) {
  if (capturing()) return refuse_in_capture("cudaMemcpy");
  if (g_sticky != cudaSuccess) return g_sticky;
  if (n) std::memmove(dst, src, n);
  forget_kernel_writes(nullptr, true);  // synchronous: after every kernel before it
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind, cudaStream_t s) {
  return enqueue(s, [=] { if (n && g_sticky == cudaSuccess) std::memmove(dst, src, n); });
}
cudaError_t cudaMemset(void* dst, int value, size_t n) {
  if (capturing()) return refuse_in_capture("cudaMemset");
  if (n) std::memset(dst, value, n);
  forget_kernel_writes(nullptr, true);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* dst, int value, size_t n, cudaStream_t s) {
  return enqueue(s, [=] { if (n && g_sticky == cudaSuccess) std::memset(dst, value, n); });
}

cudaError_t cudaStreamCreate(cudaStream_t* s) {
  static int next = 1;
  *s = new CUstream_st{next++};
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int) { return cudaStreamCreate(s); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  forget_kernel_writes(s, false);  // a new stream may get its address
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (capturing()) return refuse_in_capture("cudaStreamSynchronize");
  forget_kernel_writes(s, false);
  return g_sticky;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned int) { return cudaSuccess; }
cudaError_t cudaStreamQuery(cudaStream_t) { return g_sticky; }

cudaError_t cudaEventCreate(cudaEvent_t* e) { *e = new CUevent_st{0}; return cudaSuccess; }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned int) { return cudaEventCreate(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t) {
  if (capturing()) return refuse_in_capture("cudaEventSynchronize");
  return g_sticky;
}
cudaError_t cudaEventQuery(cudaEvent_t) { return g_sticky; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t, cudaEvent_t) { *ms = 0.f; return cudaSuccess; }

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
  std::lock_guard<std::mutex> lock(g_mu);
  for (auto& [st, c] : g_captures)
    if (c.active) return set_error(cudaErrorIllegalState, "cudaStreamBeginCapture: a capture is already in progress");
  g_captures.push_back({s, Capture{true, {}}});
  g_any_capture = true;
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* graph) {
  std::lock_guard<std::mutex> lock(g_mu);
  for (auto it = g_captures.begin(); it != g_captures.end(); ++it)
    if (it->first == s && it->second.active) {
      *graph = new CUgraph_st{std::move(it->second.ops)};
      g_captures.erase(it);
      g_any_capture = !g_captures.empty();
      return cudaSuccess;
    }
  return set_error(cudaErrorIllegalState, "cudaStreamEndCapture: the stream is not being captured");
}
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* status) {
  std::lock_guard<std::mutex> lock(g_mu);
  *status = capture_of(s) ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  *exec = new CUgraphExec_st{graph->ops};
  return cudaSuccess;
}
// Succeeds when `graph` has the executable graph's topology (here: the same sequence of node
// kinds), taking its nodes' parameters; otherwise cudaErrorGraphExecUpdateFailure, and the
// executable graph is unchanged.
cudaError_t cudaGraphExecUpdate(cudaGraphExec_t exec, cudaGraph_t graph, cudaGraphExecUpdateResultInfo* info) {
  bool same = exec->ops.size() == graph->ops.size();
  for (size_t i = 0; same && i < graph->ops.size(); ++i) same = exec->ops[i].kind == graph->ops[i].kind;
  if (info) *info = cudaGraphExecUpdateResultInfo{};
  if (!same) {
    if (info) info->result = cudaGraphExecUpdateErrorTopologyChanged;
    return set_error(cudaErrorGraphExecUpdateFailure, "cudaGraphExecUpdate: the graph's topology differs");
  }
  if (info) info->result = cudaGraphExecUpdateSuccess;
  exec->ops = graph->ops;
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t) {
  for (const Op& op : exec->ops) op.fn();
  return g_sticky;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) { delete g; return cudaSuccess; }
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) { delete e; return cudaSuccess; }

}  // extern "C"
