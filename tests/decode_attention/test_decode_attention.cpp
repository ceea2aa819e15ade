// Decode-attention CPU tests: the chunked fp64 reference against a naive softmax, paged vs
// contiguous, planner properties (coverage, balance on a skewed batch, workspace size), page
// table validation, every bad argument (messages name argument and value), the CPU-only run.
#include <cstring>
#include <cmath>
#include <limits>
#include <map>

#include "kernels/decode_attention/decode_attention.h"
#include "kernels/decode_attention/reference.h"
#include "tests/decode_attention/decode_attention_cases.h"

using namespace spw;
using namespace spw::decode_attention;
using namespace spw::decode_attention::test_cases;

namespace {
const DeviceInfo kH100 = DeviceInfo::synthetic(132);

// Plain two-pass softmax attention over the contiguous layout, written independently.
reference::Result naive(const Case& c) {
  const Problem& p = c.p;
  const int d = p.head_dim, g = p.qo_heads / p.kv_heads;
  const double scale = p.sm_scale > 0 ? p.sm_scale : 1.0 / std::sqrt(double(d));
  reference::Result r{std::vector<double>(size_t(p.batch) * p.qo_heads * d, 0.0),
                      std::vector<double>(size_t(p.batch) * p.qo_heads, -std::numeric_limits<double>::infinity())};
  for (int b = 0; b < p.batch; ++b)
    for (int h = 0; h < p.qo_heads; ++h) {
      const int len = c.kv_lens[b];
      if (len == 0) continue;
      std::vector<double> s(len);
      for (int j = 0; j < len; ++j) {
        double dot = 0;
        for (int e = 0; e < d; ++e)
          dot += double(c.q[(size_t(b) * p.qo_heads + h) * d + e]) *
                 c.k[((size_t(b) * p.kv_len_max + j) * p.kv_heads + h / g) * d + e];
        s[j] = p.soft_cap > 0 ? p.soft_cap * std::tanh(dot * scale / p.soft_cap) : dot * scale;
      }
      double sum = 0;
      for (double x : s) sum += std::exp(x);
      for (int j = 0; j < len; ++j)
        for (int e = 0; e < d; ++e)
          r.o[(size_t(b) * p.qo_heads + h) * d + e] +=
              std::exp(s[j]) / sum * c.v[((size_t(b) * p.kv_len_max + j) * p.kv_heads + h / g) * d + e];
      r.lse[size_t(b) * p.qo_heads + h] = std::log(sum);
    }
  return r;
}

double max_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double w = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isinf(a[i]) || std::isinf(b[i])) {
      if (a[i] != b[i]) return INFINITY;
      continue;
    }
    w = std::max(w, std::fabs(a[i] - b[i]));
  }
  return w;
}
}  // namespace

TEST(DecodeAttentionReference, ChunkedMatchesNaiveSoftmaxBothLayouts) {
  auto rng = test::make_rng();
  struct Spec { int qo, kv, d; std::vector<int32_t> lens; float cap; };
  const std::vector<Spec> specs = {
      {4, 1, 64, {0, 1, 7, 33}, 0.f},          {8, 2, 128, {16, 100, 0}, 0.f},
      {2, 2, 256, {5, 48}, 0.f},               {8, 1, 64, {4096}, 0.f},
      {4, 4, 64, {17, 300}, 30.f},             {16, 2, 128, {1}, 0.f},
      {2, 1, 64, {32768}, 0.f},                {4, 2, 64, {20000, 3, 0, 45, 1, 7}, 0.f}};  // 32K, skewed
  for (const Spec& s : specs)
    for (int chunk : {0, 1, 16, 37, 2048}) {
      if (chunk > 0 && chunk < 16 && s.lens[0] > 10000) continue;  // keep the long cases quick
      Problem p = problem(int(s.lens.size()), s.qo, s.kv, s.d, DType::bf16, 16);
      p.soft_cap = s.cap;
      Case c = make_case(p, s.lens, rng);
      auto want = naive(c);
      auto paged = reference::attention(c.p, c.kv_lens, c.q, c.paged_cache(), chunk);
      auto contig = reference::attention(c.contiguous(), c.kv_lens, c.q, c.contiguous_cache(), chunk);
      EXPECT_LT(max_diff(paged.o, want.o), 1e-10) << "qo" << s.qo << " d" << s.d << " chunk " << chunk;
      EXPECT_LT(max_diff(paged.lse, want.lse), 1e-10) << "qo" << s.qo << " d" << s.d << " chunk " << chunk;
      EXPECT_EQ(max_diff(paged.o, contig.o), 0.0);
      EXPECT_EQ(max_diff(paged.lse, contig.lse), 0.0);
    }
}

TEST(DecodeAttentionReference, EmptyRequestGivesZeroAndMinusInf) {
  auto rng = test::make_rng();
  Case c = make_case(problem(2, 4, 2, 64), {0, 5}, rng);
  auto r = reference::attention(c.p, c.kv_lens, c.q, c.paged_cache(), 2);
  for (int i = 0; i < 4 * 64; ++i) EXPECT_EQ(r.o[i], 0.0);
  for (int h = 0; h < 4; ++h) EXPECT_EQ(r.lse[h], -std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isfinite(r.lse[4]));
}

TEST(DecodeAttentionReference, MergeStatesAllEmptyAndSingle) {
  const double ninf = -std::numeric_limits<double>::infinity();
  std::vector<double> v{1, 2, 3, 4}, lse{ninf, ninf};
  auto r = reference::merge_states(1, 2, 2, v, lse);
  EXPECT_EQ(r.o[0], 0.0);
  EXPECT_EQ(r.lse[0], ninf);
  lse = {0.5, ninf};
  r = reference::merge_states(1, 2, 2, v, lse);
  EXPECT_DOUBLE_EQ(r.o[0], 1.0);
  EXPECT_DOUBLE_EQ(r.o[1], 2.0);
  EXPECT_DOUBLE_EQ(r.lse[0], 0.5);
  lse = {0.0, 0.0};
  r = reference::merge_states(1, 2, 2, v, lse);
  EXPECT_DOUBLE_EQ(r.o[0], 2.0);
  EXPECT_NEAR(r.lse[0], std::log(2.0), 1e-15);
}

// Several rows at once (states laid out [state][row][d]): each row merges its own states only.
TEST(DecodeAttentionReference, MergeStatesRowByRow) {
  const double ninf = -std::numeric_limits<double>::infinity();
  // state 0 rows: (1,2) (5,6) (10,20); state 1 rows: (3,4) (7,8) (30,40)
  const std::vector<double> v{1, 2, 5, 6, 10, 20, 3, 4, 7, 8, 30, 40};
  const std::vector<double> lse{0.0, 1.0, std::log(3.0), 0.0, ninf, 0.0};
  const auto r = reference::merge_states(3, 2, 2, v, lse);
  ASSERT_EQ(r.o.size(), 6u);
  EXPECT_DOUBLE_EQ(r.o[0], 2.0);  // equal weights
  EXPECT_DOUBLE_EQ(r.o[1], 3.0);
  EXPECT_DOUBLE_EQ(r.lse[0], std::log(2.0));
  EXPECT_DOUBLE_EQ(r.o[2], 5.0);  // the second state is empty
  EXPECT_DOUBLE_EQ(r.o[3], 6.0);
  EXPECT_DOUBLE_EQ(r.lse[1], 1.0);
  EXPECT_NEAR(r.o[4], 0.75 * 10 + 0.25 * 30, 1e-12);  // weights 3 : 1
  EXPECT_NEAR(r.o[5], 0.75 * 20 + 0.25 * 40, 1e-12);
  EXPECT_NEAR(r.lse[2], std::log(4.0), 1e-15);
}

// ---- planner ----

namespace {
void expect_valid_plan(const Plan& pl, const std::string& what) {
  const Problem& p = pl.problem;
  const int g = p.qo_heads / p.kv_heads;
  // (request, qo head) -> covered KV positions, each exactly once.
  std::map<std::pair<int, int>, std::vector<int>> cover;
  for (int b = 0; b < p.batch; ++b)
    for (int h = 0; h < p.qo_heads; ++h) cover[{b, h}].assign(pl.kv_lens[b], 0);
  int slots = 0;
  for (const RequestSplit& s : pl.splits()) slots += s.num_chunks > 1 ? s.num_chunks : 0;
  EXPECT_EQ(slots, pl.num_slots) << what;
  for (int b = 0; b < p.batch; ++b) EXPECT_EQ(pl.splits()[b].kv_len, pl.kv_lens[b]) << what;
  // Every item: its requests (several only where sharing was asked: consecutive lengths) and
  // heads, each request's positions [kv_begin, min(kv_end, its kv_len)) of the chunk.
  std::map<std::pair<int, int>, int> items_per;  // (request, qo head) -> items
  for (const WorkItem& w : pl.items()) {
    ASSERT_GE(w.request, 0);
    ASSERT_GE(w.request_count, 1);
    ASSERT_LE(w.request + w.request_count, p.batch);
    ASSERT_LE(w.kv_end - w.kv_begin, pl.chunk_tokens) << what;
    ASSERT_GE(w.qo_head_count, 1);
    ASSERT_LE(w.qo_head_count * w.request_count, kMaxHeadsPerCta);
    ASSERT_EQ(w.kv_end, std::min(pl.kv_lens[w.request + w.request_count - 1], (w.chunk + 1) * pl.chunk_tokens));
    for (int r = w.request; r < w.request + w.request_count; ++r) {
      if (r > w.request) {
        ASSERT_EQ(pl.kv_lens[r], pl.kv_lens[r - 1] + 1) << what;
      }
      ASSERT_LT(w.chunk, pl.splits()[r].num_chunks) << what;
      for (int h = w.qo_head_begin; h < w.qo_head_begin + w.qo_head_count; ++h) {
        ASSERT_EQ(h / g, w.kv_head) << what;
        items_per[{r, h}]++;
        for (int j = w.kv_begin; j < std::min(w.kv_end, pl.kv_lens[r]); ++j) cover[{r, h}][j]++;
      }
    }
  }
  for (auto& [key, v] : cover)
    for (size_t j = 0; j < v.size(); ++j)
      ASSERT_EQ(v[j], 1) << what << " request " << key.first << " head " << key.second << " pos " << j;
  // Every (request, qo head) appears in exactly num_chunks items (kv_len 0: one item).
  for (int b = 0; b < p.batch; ++b)
    for (int h = 0; h < p.qo_heads; ++h) EXPECT_EQ(items_per[std::pair(b, h)], pl.splits()[b].num_chunks) << what;
  const size_t need = pl.partial_lse_offset + size_t(pl.num_slots) * p.qo_heads * sizeof(float);
  EXPECT_GE(pl.workspace_bytes, need);
  EXPECT_GE(pl.partial_lse_offset, pl.partial_o_offset + size_t(pl.num_slots) * p.qo_heads * p.head_dim * 4);
  EXPECT_GE(pl.partial_o_offset, pl.meta_bytes);
  EXPECT_EQ(pl.partial_o_offset % 256, 0u);
}
}  // namespace

TEST(DecodeAttentionPlan, CoversEveryPositionOnceForManyShapes) {
  auto rng = test::make_rng();
  for (int qo_kv : {1, 4, 8, 32})
    for (bool nosplit : {false, true})
      for (int trial = 0; trial < 6; ++trial) {
        const int batch = std::uniform_int_distribution<int>(1, 9)(rng);
        std::vector<int32_t> lens(batch);
        for (auto& l : lens) l = std::uniform_int_distribution<int>(0, 1 << (trial * 3))(rng);
        Problem p = problem(batch, 8 * (qo_kv == 32 ? 4 : 1) * 1, 0, 128);
        p.kv_heads = qo_kv == 32 ? 1 : 8 / std::min(qo_kv, 8);
        p.qo_heads = p.kv_heads * qo_kv;
        p.disable_split = nosplit;
        Plan pl = plan(p, lens, kH100);
        expect_valid_plan(pl, fmt::format("g{} nosplit {} trial {}", qo_kv, nosplit, trial));
        if (nosplit) { EXPECT_FALSE(pl.needs_merge); }
      }
}

TEST(DecodeAttentionPlan, SplitsOneLongRequestOverTheGpu) {
  Problem p = problem(1, 32, 8, 128);
  std::vector<int32_t> lens{32768};
  Plan pl = plan(p, lens, kH100);
  expect_valid_plan(pl, "b1 32K");
  EXPECT_GE(pl.num_items, 132 * 2) << "batch 1 must fill the GPU";
  EXPECT_LE(pl.num_items, 132 * 8);
  EXPECT_TRUE(pl.needs_merge);
  p.disable_split = true;
  Plan ns = plan(p, lens, kH100);
  EXPECT_EQ(ns.num_items, 8);
  EXPECT_EQ(ns.chunk_tokens, 32768);
}

TEST(DecodeAttentionPlan, FixedChunksCutEveryRequestTheSameWayWhateverTheBatchAndDevice) {
  // Batch-invariant split: a request's work items depend on its own length alone.
  auto rng = test::make_rng();
  for (int fixed : {64, 256, 512})
    for (int trial = 0; trial < 8; ++trial) {
      const int batch = std::uniform_int_distribution<int>(1, 40)(rng);
      std::vector<int32_t> lens(batch);
      for (auto& l : lens) l = std::uniform_int_distribution<int>(0, 3000)(rng);
      Problem p = problem(batch, 16, 4, 128);
      p.fixed_chunk_tokens = fixed;
      for (const DeviceInfo& dev : {kH100, DeviceInfo::synthetic(7)}) {
        const Plan pl = plan(p, lens, dev);
        const std::string what = fmt::format("fixed {} trial {} sms {}", fixed, trial, dev.sm_count);
        expect_valid_plan(pl, what);
        EXPECT_EQ(pl.chunk_tokens, fixed) << what;
        for (const WorkItem& w : pl.items()) {
          ASSERT_EQ(w.kv_begin, std::min(w.chunk * fixed, lens[w.request])) << what;
          ASSERT_EQ(w.kv_end, std::min((w.chunk + 1) * fixed, lens[w.request])) << what;
        }
        for (int b = 0; b < batch; ++b)
          EXPECT_EQ(pl.splits()[b].num_chunks, std::max(1, (lens[b] + fixed - 1) / fixed)) << what << " request " << b;
      }
    }
  // One long request is cut at the fixed size too (not balanced over the SMs).
  Problem p = problem(1, 32, 8, 128);
  p.fixed_chunk_tokens = 1024;
  std::vector<int32_t> lens{32768};
  EXPECT_EQ(plan(p, lens, kH100).splits()[0].num_chunks, 32);
}

TEST(DecodeAttentionPlan, RequestsThatExtendThePreviousShareTheirCtas) {
  // Two chains of new tokens (each token its own request, one row longer than the one before)
  // beside lone requests, fixed 64-token chunks: the chains' requests share CTAs, 8 query heads
  // per CTA (GQA group 4: two requests; group 1: eight), every position still covered once.
  std::vector<int32_t> lens{300};
  std::vector<uint8_t> extends{0};
  for (int j = 0; j < 9; ++j) lens.push_back(120 + j), extends.push_back(j > 0);
  lens.push_back(5), extends.push_back(0);
  for (int j = 0; j < 5; ++j) lens.push_back(63 + j), extends.push_back(j > 0);  // crosses a chunk end
  for (int group : {1, 4, 3}) {
    Problem p = problem(static_cast<int>(lens.size()), 2 * group, 2, 64);
    p.fixed_chunk_tokens = 64;
    const Plan alone = plan(p, lens, kH100), shared = plan(p, lens, kH100, nullptr, extends);
    const std::string what = fmt::format("group {}", group);
    expect_valid_plan(shared, what);
    EXPECT_EQ(shared.num_slots, alone.num_slots) << what;
    EXPECT_EQ(std::memcmp(shared.splits().data(), alone.splits().data(), shared.splits().size_bytes()), 0) << what;
    int most = 0;
    for (const WorkItem& w : shared.items()) most = std::max(most, w.request_count);
    EXPECT_EQ(most, std::min(9, kMaxHeadsPerCta / group)) << what;
    EXPECT_LT(shared.num_items, alone.num_items) << what;
    // Without any flag set: the plain plan, item for item.
    const std::vector<uint8_t> none(lens.size(), 0);
    const Plan same = plan(p, lens, kH100, nullptr, none);
    ASSERT_EQ(same.meta_bytes, alone.meta_bytes);
    EXPECT_EQ(std::memcmp(same.host_meta.get(), alone.host_meta.get(), same.meta_bytes), 0) << what;
  }
}

TEST(DecodeAttentionChecks, BadSharingIsRejected) {
  Problem p = problem(3, 8, 2, 64);
  std::vector<int32_t> lens{4, 5, 7};
  EXPECT_THROW_MSG(plan(p, lens, kH100, nullptr, std::vector<uint8_t>{0, 1}),
                   "extends_previous.size() = 2: must be 0 or batch = 3");
  EXPECT_THROW_MSG(plan(p, lens, kH100, nullptr, std::vector<uint8_t>{1, 0, 0}), "extends_previous[0] = 1: must be 0");
  EXPECT_THROW_MSG(plan(p, lens, kH100, nullptr, std::vector<uint8_t>{0, 1, 1}),
                   "kv_lens[2] = 7: must be kv_lens[1] + 1 = 6 (extends_previous[2] is set)");
  p.layout = Layout::contiguous;
  p.kv_len_max = 8;
  EXPECT_THROW_MSG(plan(p, lens, kH100, nullptr, std::vector<uint8_t>{0, 1, 0}),
                   "extends_previous = given: needs the paged layout");
}

TEST(DecodeAttentionPlan, BalancesASkewedBatch) {
  // One 128K request beside 63 short ones: no CTA may carry much more than the average work.
  Problem p = problem(64, 32, 8, 128);
  std::vector<int32_t> lens(64, 512);
  lens[17] = 131072;
  Plan pl = plan(p, lens, kH100);
  expect_valid_plan(pl, "skewed");
  long long total = 0, longest = 0;
  for (const WorkItem& w : pl.items()) {
    total += w.kv_end - w.kv_begin;
    longest = std::max<long long>(longest, w.kv_end - w.kv_begin);
  }
  const double per_sm = double(total) / 132;
  EXPECT_LE(longest, per_sm) << "the longest work item must be shorter than one SM's share";
  EXPECT_GE(pl.splits()[17].num_chunks, 32);
  EXPECT_EQ(pl.splits()[0].num_chunks, 1);
  EXPECT_GE(pl.num_items, 132 * 2);
}

TEST(DecodeAttentionPlan, LargeBatchIsNotSplit) {
  Problem p = problem(128, 32, 8, 128);
  std::vector<int32_t> lens(128, 4096);
  Plan pl = plan(p, lens, kH100);
  expect_valid_plan(pl, "b128");
  EXPECT_FALSE(pl.needs_merge);
  EXPECT_EQ(pl.num_items, 128 * 8);
  EXPECT_EQ(pl.workspace_bytes, pl.partial_o_offset);
}

TEST(DecodeAttentionPlan, AllEmptyBatchAndMqaSubgroups) {
  Problem p = problem(3, 32, 1, 64);
  std::vector<int32_t> lens{0, 0, 0};
  Plan pl = plan(p, lens, kH100);
  expect_valid_plan(pl, "empty mqa");
  EXPECT_EQ(pl.num_items, 3 * 4);  // 32 heads in sub-groups of 8
  EXPECT_FALSE(pl.needs_merge);
  p.qo_heads = 12;  // group 12 -> two sub-groups of 6
  pl = plan(p, lens, kH100);
  for (const WorkItem& w : pl.items()) EXPECT_EQ(w.qo_head_count, 6);
}

TEST(DecodeAttentionPlan, ArenaPlansEqualFreshPlansAndStopAllocating) {
  // The runtime plans every step into one PlanHostArena: same work list, no allocation per step.
  auto rng = test::make_rng();
  PlanHostArena arena(64 << 10);
  for (int step = 0; step < 50; ++step) {
    const int batch = std::uniform_int_distribution<int>(1, 8)(rng);
    std::vector<int32_t> lens(batch);
    for (auto& l : lens) l = std::uniform_int_distribution<int>(0, 20000)(rng);
    const Problem p = problem(batch, 32, 8, 128);
    arena.reset();
    const Plan a = plan(p, lens, kH100, &arena), f = plan(p, lens, kH100);
    expect_valid_plan(a, fmt::format("arena step {}", step));
    ASSERT_EQ(a.meta_bytes, f.meta_bytes);
    ASSERT_EQ(std::memcmp(a.host_meta.get(), f.host_meta.get(), a.meta_bytes), 0) << "step " << step;
  }
  EXPECT_EQ(arena.allocations(), 1);
}

// ---- argument checks ----

TEST(DecodeAttentionChecks, BadProblemIsRejected) {
  std::vector<int32_t> lens{4};
  auto bad = [&](auto edit, const char* msg) {
    Problem p = problem(1, 8, 2, 128);
    edit(p);
    EXPECT_THROW_MSG(plan(p, lens, kH100), msg);
  };
  bad([](Problem& p) { p.head_dim = 96; }, "head_dim = 96: must be 64, 128 or 256");
  bad([](Problem& p) { p.dtype = DType::f32; }, "dtype = fp32: must be fp16 or bf16");
  bad([](Problem& p) { p.qo_heads = 6; p.kv_heads = 4; }, "qo_heads = 6: must be divisible by kv_heads = 4");
  bad([](Problem& p) { p.kv_heads = 0; }, "kv_heads = 0");
  bad([](Problem& p) { p.batch = 0; }, "batch = 0");
  bad([](Problem& p) { p.page_size = 0; }, "page_size = 0");
  bad([](Problem& p) { p.sm_scale = -1.f; }, "sm_scale = -1");
  bad([](Problem& p) { p.soft_cap = NAN; }, "soft_cap = nan");
  bad([](Problem& p) { p.layout = static_cast<Layout>(7); }, "layout = 7");
  bad([](Problem& p) { p.fixed_chunk_tokens = 100; },
      "fixed_chunk_tokens = 100: must be 0 (balanced split) or a positive multiple of 64");
  bad([](Problem& p) { p.fixed_chunk_tokens = -64; }, "fixed_chunk_tokens = -64");
  bad([](Problem& p) { p.fixed_chunk_tokens = 128; p.disable_split = true; },
      "fixed_chunk_tokens = 128: must be 0 when disable_split is set");
}

TEST(DecodeAttentionChecks, BadLengthsAreRejected) {
  Problem p = problem(2, 8, 2, 64);
  std::vector<int32_t> lens{4, -3};
  EXPECT_THROW_MSG(plan(p, lens, kH100), "kv_lens[1] = -3: must be >= 0");
  std::vector<int32_t> one{4};
  EXPECT_THROW_MSG(plan(p, one, kH100), "kv_lens.size() = 1: must equal batch = 2");
  p.layout = Layout::contiguous;
  p.kv_len_max = 8;
  std::vector<int32_t> long_lens{4, 9};
  EXPECT_THROW_MSG(plan(p, long_lens, kH100), "kv_lens[1] = 9: must be <= kv_len_max = 8");
  EXPECT_THROW_MSG(plan(p, one, DeviceInfo{}), "kv_lens.size()");
  std::vector<int32_t> ok{4, 4};
  EXPECT_THROW_MSG(plan(p, ok, DeviceInfo{}), "device.sm_count = 0");
}

TEST(DecodeAttentionChecks, BadRunArgumentsAreRejected) {
  Problem p = problem(2, 8, 2, 64);
  std::vector<int32_t> lens{40, 3000};
  Plan pl = plan(p, lens, kH100);
  alignas(16) static char buf[4096];
  auto dev = [](int off) { return static_cast<void*>(buf + off); };
  Args a;
  a.q = dev(0); a.o = dev(16); a.k_pages = dev(32); a.v_pages = dev(48);
  a.indptr = reinterpret_cast<const int32_t*>(dev(64));
  a.indices = reinterpret_cast<const int32_t*>(dev(80));
  std::vector<char> ws_storage(pl.workspace_bytes + 32);
  void* ws = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(ws_storage.data()) + 15) & ~uintptr_t(15));
  auto expect = [&](Args x, void* w, size_t n, const char* msg) { EXPECT_THROW_MSG(run(pl, x, w, n, nullptr), msg); };
  { Args x = a; x.q = nullptr; expect(x, ws, pl.workspace_bytes, "q = null"); }
  { Args x = a; x.q = dev(2); expect(x, ws, pl.workspace_bytes, "must be 16-byte aligned"); }
  { Args x = a; x.o = nullptr; expect(x, ws, pl.workspace_bytes, "o = null"); }
  { Args x = a; x.k_pages = nullptr; expect(x, ws, pl.workspace_bytes, "k_pages = null"); }
  { Args x = a; x.v_pages = dev(8); expect(x, ws, pl.workspace_bytes, "v_pages = "); }
  { Args x = a; x.indices = nullptr; expect(x, ws, pl.workspace_bytes, "indices = null"); }
  { Args x = a; x.lse = reinterpret_cast<float*>(dev(1)); expect(x, ws, pl.workspace_bytes, "lse = "); }
  expect(a, ws, pl.workspace_bytes - 1, fmt::format("workspace_bytes = {}: is too small", pl.workspace_bytes - 1).c_str());
  expect(a, nullptr, pl.workspace_bytes, "workspace = null");
  expect(a, static_cast<char*>(ws) + 4, pl.workspace_bytes, "workspace = ");
  EXPECT_THROW_MSG(run(Plan{}, a, ws, pl.workspace_bytes, nullptr), "plan = empty");
  Problem c = p;
  c.layout = Layout::contiguous;
  c.kv_len_max = 3000;
  Plan pc = plan(c, lens, kH100);
  { Args x = a; expect(x, ws, 0, "workspace_bytes"); }
  EXPECT_THROW_MSG(run(pc, a, ws, pc.workspace_bytes, nullptr), "k = null");
  // Everything valid: a CPU-only build says so, a CUDA build would launch (not done here).
#if !SPW_HAVE_CUDA
  EXPECT_THROW_MSG(run(pl, a, ws, pl.workspace_bytes, nullptr), "built without CUDA");
#endif
}

TEST(DecodeAttentionChecks, PageTableValidation) {
  auto rng = test::make_rng();
  Case c = make_case(problem(3, 4, 2, 64, DType::f16, 16), {20, 0, 16}, rng);
  validate_page_table(c.p, c.kv_lens, c.indptr, c.indices, c.last_page_len, c.num_pages);
  {
    auto ind = c.indices;
    ind[1] = c.num_pages;
    EXPECT_THROW_MSG(validate_page_table(c.p, c.kv_lens, c.indptr, ind, c.last_page_len, c.num_pages),
                     fmt::format("indices[1] = {}: must be in [0, num_pages = {})", c.num_pages, c.num_pages).c_str());
    ind[1] = -1;
    EXPECT_THROW_MSG(validate_page_table(c.p, c.kv_lens, c.indptr, ind, c.last_page_len, c.num_pages), "indices[1] = -1");
  }
  {
    auto ip = c.indptr;
    ip[2] = 0;  // not monotone
    EXPECT_THROW_MSG(validate_page_table(c.p, c.kv_lens, ip, c.indices, c.last_page_len, c.num_pages),
                     "indptr[2] = 0: must be >= indptr[1] = 2 (not monotone)");
    ip = c.indptr;
    ip[0] = 1;
    EXPECT_THROW_MSG(validate_page_table(c.p, c.kv_lens, ip, c.indices, c.last_page_len, c.num_pages), "indptr[0] = 1");
  }
  {
    auto lp = c.last_page_len;
    lp[0] = 17;
    EXPECT_THROW_MSG(validate_page_table(c.p, c.kv_lens, c.indptr, c.indices, lp, c.num_pages),
                     "last_page_len[0] = 17: must be in [1, page_size = 16]");
    auto lens = c.kv_lens;
    lens[2] = 15;
    EXPECT_THROW_MSG(validate_page_table(c.p, lens, c.indptr, c.indices, c.last_page_len, c.num_pages),
                     "kv_lens[2] = 15: differs from the page table's length 16");
  }
  std::vector<int32_t> short_ind(c.indices.begin(), c.indices.begin() + 1);
  EXPECT_THROW_MSG(validate_page_table(c.p, c.kv_lens, c.indptr, short_ind, c.last_page_len, c.num_pages),
                   "indices.size() = 1");
}

TEST(DecodeAttentionChecks, MergeArgumentsAreRejected) {
  alignas(16) static float buf[64];
  MergeProblem m{4, 2, 64, DType::f32, DType::f16};
  EXPECT_THROW_MSG(merge_states({4, 0, 64}, buf, buf, buf, nullptr, nullptr), "num_states = 0");
  EXPECT_THROW_MSG(merge_states({4, 2, 60}, buf, buf, buf, nullptr, nullptr), "head_dim = 60");
  EXPECT_THROW_MSG(merge_states({4, 2, 0}, buf, buf, buf, nullptr, nullptr), "head_dim = 0: must be a positive multiple");
  EXPECT_THROW_MSG(merge_states({4, 2, 1032}, buf, buf, buf, nullptr, nullptr), "head_dim = 1032");
  EXPECT_THROW_MSG(merge_states(m, nullptr, buf, buf, nullptr, nullptr), "v_in = null");
  EXPECT_THROW_MSG(merge_states(m, buf, nullptr, buf, nullptr, nullptr), "lse_in = null");
  EXPECT_THROW_MSG(merge_states(m, buf, buf, reinterpret_cast<char*>(buf) + 2, nullptr, nullptr), "v_out = ");
  m.in_dtype = static_cast<DType>(9);
  EXPECT_THROW_MSG(merge_states(m, buf, buf, buf, nullptr, nullptr), "in_dtype = 9");
}

// ---- C ABI ----

#include "kernels/decode_attention/c_api.h"

// spw_plan_arena: plans made in it every "step" stop allocating; their workspace equals a
// fresh plan's; a plan outlives both a reset and the arena's destruction.
namespace {
// Batch 2, Llama-3-8B heads, paged with 16-token pages.
spw_decode_attention_problem c_problem(int head_dim, int dtype) {
  spw_decode_attention_problem cp{};
  cp.batch = 2;
  cp.qo_heads = 32;
  cp.kv_heads = 8;
  cp.head_dim = head_dim;
  cp.dtype = dtype;
  cp.layout = 0;
  cp.page_size = 16;
  return cp;
}
}  // namespace

TEST(DecodeAttentionCApi, PlansInAnArenaStopAllocating) {
  const spw_decode_attention_problem cp = c_problem(128, SPW_FP16);
  spw_plan_arena* arena = nullptr;
  ASSERT_EQ(spw_plan_arena_create(1 << 16, &arena), SPW_OK) << spw_last_error();
  spw_decode_attention_handle *fresh = nullptr, *kept = nullptr;
  for (int step = 0; step < 20; ++step) {
    const int32_t lens[2] = {100 + step, 5000 + 7 * step};
    ASSERT_EQ(spw_plan_arena_reset(arena), SPW_OK);
    spw_decode_attention_handle* h = nullptr;
    ASSERT_EQ(spw_decode_attention_plan_in_arena(&cp, lens, 132, arena, &h), SPW_OK) << spw_last_error();
    ASSERT_EQ(spw_decode_attention_plan(&cp, lens, 132, &fresh), SPW_OK);
    size_t a = 0, b = 0;
    spw_decode_attention_workspace_size(h, &a);
    spw_decode_attention_workspace_size(fresh, &b);
    EXPECT_EQ(a, b);
    spw_decode_attention_destroy(fresh);
    if (step == 19) kept = h;
    else spw_decode_attention_destroy(h);
  }
  size_t cap = 0, used = 0;
  int allocations = 0;
  ASSERT_EQ(spw_plan_arena_stats(arena, &cap, &used, &allocations), SPW_OK);
  EXPECT_EQ(allocations, 1);
  EXPECT_GT(used, 0u);
  EXPECT_EQ(spw_plan_arena_reset(nullptr), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(spw_last_error()).find("spw_plan_arena_reset: arena = null"), std::string::npos);
  EXPECT_EQ(spw_plan_arena_create(0, nullptr), SPW_ERROR_INVALID_ARGUMENT);
  spw_plan_arena_destroy(arena);
  size_t ws = 0;
  EXPECT_EQ(spw_decode_attention_workspace_size(kept, &ws), SPW_OK);  // the block lives on in the plan
  EXPECT_GT(ws, 0u);
  spw_decode_attention_destroy(kept);
}

TEST(DecodeAttentionCApi, SharedPlanTakesTheFlags) {
  spw_decode_attention_problem cp = c_problem(128, SPW_FP16);
  const int32_t lens[2] = {100, 101};
  const uint8_t extends[2] = {0, 1}, bad[2] = {1, 0};
  spw_decode_attention_handle *shared = nullptr, *plain = nullptr;
  ASSERT_EQ(spw_decode_attention_plan_shared(&cp, lens, extends, 132, nullptr, &shared), SPW_OK) << spw_last_error();
  ASSERT_EQ(spw_decode_attention_plan_shared(&cp, lens, nullptr, 132, nullptr, &plain), SPW_OK) << spw_last_error();
  size_t a = 0, b = 0;
  spw_decode_attention_workspace_size(shared, &a);
  spw_decode_attention_workspace_size(plain, &b);
  EXPECT_LT(a, b);  // half the work items (the metadata part of the workspace)
  spw_decode_attention_destroy(shared);
  spw_decode_attention_destroy(plain);
  spw_decode_attention_handle* h = nullptr;
  EXPECT_EQ(spw_decode_attention_plan_shared(&cp, lens, bad, 132, nullptr, &h), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(spw_last_error()).find("extends_previous[0] = 1"), std::string::npos) << spw_last_error();
}

TEST(DecodeAttentionCApi, ErrorPathsSetStatusAndMessage) {
  spw_decode_attention_problem cp = c_problem(96, SPW_FP16);
  const int32_t lens[2] = {100, 5000};
  spw_decode_attention_handle* h = reinterpret_cast<spw_decode_attention_handle*>(0x1);
  EXPECT_EQ(spw_decode_attention_plan(&cp, lens, 132, &h), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(h, nullptr);
  EXPECT_NE(std::string(spw_last_error()).find("head_dim = 96"), std::string::npos) << spw_last_error();
  cp.head_dim = 128;
  cp.dtype = 7;
  EXPECT_EQ(spw_decode_attention_plan(&cp, lens, 132, &h), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(spw_last_error()).find("problem.dtype = 7"), std::string::npos) << spw_last_error();
  cp.dtype = SPW_BF16;
  EXPECT_EQ(spw_decode_attention_plan(&cp, nullptr, 132, &h), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(spw_last_error()).find("kv_lens = null"), std::string::npos) << spw_last_error();
  EXPECT_EQ(spw_decode_attention_plan(nullptr, lens, 132, &h), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(spw_decode_attention_plan(&cp, lens, 132, nullptr), SPW_ERROR_INVALID_ARGUMENT);

  ASSERT_EQ(spw_decode_attention_plan(&cp, lens, 132, &h), SPW_OK) << spw_last_error();
  size_t ws = 0;
  ASSERT_EQ(spw_decode_attention_workspace_size(h, &ws), SPW_OK);
  EXPECT_GT(ws, 0u);
  EXPECT_EQ(spw_decode_attention_workspace_size(nullptr, &ws), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(spw_last_error()).find("plan = null"), std::string::npos);
  EXPECT_EQ(spw_decode_attention_workspace_size(h, nullptr), SPW_ERROR_INVALID_ARGUMENT);
  alignas(16) static char buf[256];
  EXPECT_EQ(spw_decode_attention_run(h, nullptr, buf, buf, reinterpret_cast<int32_t*>(buf),
                                     reinterpret_cast<int32_t*>(buf), nullptr, buf, nullptr, buf, ws, nullptr),
            SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(spw_last_error()).find("q = null"), std::string::npos) << spw_last_error();
  EXPECT_EQ(spw_decode_attention_run(h, buf, buf, buf, reinterpret_cast<int32_t*>(buf),
                                     reinterpret_cast<int32_t*>(buf), nullptr, buf, nullptr, buf, ws - 1, nullptr),
            SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(spw_last_error()).find("is too small"), std::string::npos) << spw_last_error();
#if !SPW_HAVE_CUDA
  EXPECT_EQ(spw_decode_attention_run(h, buf, buf, buf, reinterpret_cast<int32_t*>(buf),
                                     reinterpret_cast<int32_t*>(buf), nullptr, buf, nullptr, buf, ws, nullptr),
            SPW_ERROR_UNSUPPORTED);  // "not supported in this build"
#endif
  spw_decode_attention_destroy(h);
  spw_decode_attention_destroy(nullptr);
}
