// Decode-attention GPU tests against the fp64 reference (skipped without a usable GPU): group
// sizes 1/4/8/32, head dims, dtypes, paged vs contiguous (bitwise), split vs no split, LSE,
// kv_len 0, soft-cap, a 32K request, a skewed batch, poisoned outputs and workspace, bitwise
// repeat determinism, CUDA-graph capture + replay with new inputs, public merge_states.
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

#include "kernels/common/cuda_check.h"
#include "kernels/common/device_buffer.h"
#include "kernels/decode_attention/decode_attention.h"
#include "kernels/decode_attention/reference.h"
#include "tests/common/device_upload.h"
#include "tests/common/graph_capture.h"
#include "tests/decode_attention/decode_attention_cases.h"

using namespace spw;
using namespace spw::decode_attention;
using namespace spw::decode_attention::test_cases;

namespace {

using test::upload_ints;
using test::upload_nonempty;

template <typename T>
struct DeviceCase {
  DeviceBuffer<T> q, k, v, k_pages, v_pages, o;
  DeviceBuffer<int32_t> indptr, indices, last_page_len;
  DeviceBuffer<float> lse;
  explicit DeviceCase(const Case& c)
      : q(upload_nonempty<T>(c.q)), k(upload_nonempty<T>(c.k)), v(upload_nonempty<T>(c.v)),
        k_pages(upload_nonempty<T>(c.k_pages)), v_pages(upload_nonempty<T>(c.v_pages)), o(c.q.size()),
        indptr(upload_ints(c.indptr)), indices(upload_ints(c.indices)), last_page_len(upload_ints(c.last_page_len)),
        lse(static_cast<size_t>(c.p.batch) * c.p.qo_heads) {}
  Args args() const {
    Args a;
    a.q = q.get();
    a.k_pages = k_pages.get();
    a.v_pages = v_pages.get();
    a.indptr = indptr.get();
    a.indices = indices.get();
    a.last_page_len = last_page_len.get();
    a.k = k.get();
    a.v = v.get();
    a.o = o.get();
    a.lse = lse.get();
    return a;
  }
};

struct Output {
  std::vector<float> o, lse;
  std::vector<unsigned char> o_bits;  // raw bytes of O for bitwise comparisons
  std::vector<float> lse_bits;
};

template <typename T>
Output download(DeviceCase<T>& d) {
  Output out;
  auto o = d.o.download();
  out.o = test::to_floats(o);
  out.o_bits.resize(o.size() * sizeof(T));
  std::memcpy(out.o_bits.data(), o.data(), out.o_bits.size());
  out.lse = d.lse.download();
  out.lse_bits = out.lse;
  return out;
}

// Plans (with `extends`: decode_attention::plan's extends_previous), poisons O, LSE and the
// workspace, runs once on the default stream, downloads.
template <typename T>
Output run_once(const Case& c, Layout layout, bool nosplit, DeviceCase<T>* dev = nullptr,
                std::span<const uint8_t> extends = {}) {
  Problem p = layout == Layout::paged ? c.p : c.contiguous();
  p.disable_split = nosplit;
  const Plan pl = plan(p, c.kv_lens, query_device(0), nullptr, extends);
  std::unique_ptr<DeviceCase<T>> own;
  if (!dev) own = std::make_unique<DeviceCase<T>>(c), dev = own.get();
  DeviceBuffer<unsigned char> ws(std::max<size_t>(pl.workspace_bytes, 16));
  ws.fill_bytes(test::kPoisonByte);
  dev->o.fill_bytes(test::kPoisonByte);
  dev->lse.fill_bytes(test::kPoisonByte);
  run(pl, dev->args(), ws.get(), ws.bytes(), nullptr);
  SPW_CUDA_CHECK(cudaDeviceSynchronize());
  return download(*dev);
}

// LSE: -inf exactly where the reference has it, otherwise within an absolute tolerance.
void expect_lse_close(const std::vector<float>& got, const std::vector<double>& want, double tol,
                      const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isinf(want[i])) {
      EXPECT_TRUE(std::isinf(got[i]) && got[i] < 0) << what << " lse[" << i << "] = " << got[i];
    } else {
      EXPECT_NEAR(got[i], want[i], tol) << what << " lse[" << i << "]";
    }
  }
}

// Runs the case in both layouts (split as planned) against the reference; paged and contiguous
// must agree bitwise (same plan, same arithmetic order).
template <typename T>
void check_against_reference(const Case& c, const std::string& what, bool nosplit = false) {
  const auto ref = reference::attention(c.p, c.kv_lens, c.q, c.paged_cache());
  DeviceCase<T> dev(c);
  const Output paged = run_once<T>(c, Layout::paged, nosplit, &dev);
  EXPECT_TRUE(test::close_to(paged.o, ref.o, test::tolerance_for(c.p.dtype))) << what;
  expect_lse_close(paged.lse, ref.lse, 2e-3, what);
  const Output contig = run_once<T>(c, Layout::contiguous, nosplit, &dev);
  EXPECT_EQ(paged.o_bits, contig.o_bits) << what << ": paged and contiguous differ";
  EXPECT_EQ(0, std::memcmp(paged.lse_bits.data(), contig.lse_bits.data(), paged.lse_bits.size() * 4)) << what;
}

template <typename F>
void for_dtype(DType dt, F&& f) {
  if (dt == DType::f16) f(half{});
  else f(bfloat16{});
}

}  // namespace

TEST(DecodeAttentionGpu, GroupSizesHeadDimsDtypesAgainstReference) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  for (DType dt : {DType::f16, DType::bf16})
    for (int d : {64, 128, 256})
      for (int g : {1, 4, 8}) {
        Problem p = problem(7, 2 * g, 2, d, dt, 16);
        Case c = make_case(p, {1, 7, 0, 100, 1000, 333, 2500}, rng);
        for_dtype(dt, [&](auto t) {
          using T = decltype(t);
          check_against_reference<T>(c, fmt::format("{} d{} g{}", dtype_name(dt), d, g));
        });
      }
}

TEST(DecodeAttentionGpu, MqaSubgroupsSoftCapScaleAndPageSizes) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  for (int page_size : {1, 16, 64}) {
    Problem p = problem(3, 32, 1, 128, DType::bf16, page_size);  // group 32: 4 CTAs per KV head
    p.soft_cap = 5.f;
    p.sm_scale = 0.2f;
    Case c = make_case(p, {600, 17, 3000}, rng);
    check_against_reference<bfloat16>(c, fmt::format("mqa page {}", page_size));
  }
  Problem p = problem(2, 12, 1, 64, DType::f16, 16);  // group 12: two sub-groups of 6
  Case c = make_case(p, {513, 9}, rng);
  check_against_reference<half>(c, "group 12");
}

TEST(DecodeAttentionGpu, SplitAndNoSplitAgree) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  for (DType dt : {DType::f16, DType::bf16}) {
    Problem p = problem(2, 32, 8, 128, dt, 16);
    Case c = make_case(p, {8000, 4097}, rng);
    ASSERT_TRUE(plan(p, c.kv_lens, query_device(0)).needs_merge) << "the case must split";
    for_dtype(dt, [&](auto t) {
      using T = decltype(t);
      const auto ref = reference::attention(c.p, c.kv_lens, c.q, c.paged_cache());
      const Output split = run_once<T>(c, Layout::paged, false);
      const Output whole = run_once<T>(c, Layout::paged, true);
      EXPECT_TRUE(test::close_to(split.o, ref.o, test::tolerance_for(dt)));
      EXPECT_TRUE(test::close_to(whole.o, ref.o, test::tolerance_for(dt)));
      std::vector<double> whole_d(whole.o.begin(), whole.o.end());
      EXPECT_TRUE(test::close_to(split.o, whole_d, test::tolerance_for(dt)));
      expect_lse_close(split.lse, ref.lse, 2e-3, "split");
      expect_lse_close(whole.lse, ref.lse, 2e-3, "no split");
    });
  }
}

// Problem::fixed_chunk_tokens: each request's output is bitwise the same whether it runs in a
// batch beside others or alone (the runtime's batch-invariant mode relies on it), and matches
// the reference.
TEST(DecodeAttentionGpu, FixedChunksGiveEachRequestTheSameBitsAloneAsInABatch) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  for (int head_dim : {64, 128, 256})
    for (int fixed : {64, 256}) {
      const DType dt = head_dim == 128 ? DType::bf16 : DType::f16;
      Problem p = problem(6, 8, 2, head_dim, dt, 16);
      p.fixed_chunk_tokens = fixed;
      Case c = make_case(p, {1, 700, fixed, 1500, fixed + 1, 0}, rng);
      for_dtype(dt, [&](auto t) {
        using T = decltype(t);
        const std::string what = fmt::format("head_dim {} fixed {}", head_dim, fixed);
        DeviceCase<T> dev(c);
        const Output batch = run_once<T>(c, Layout::paged, false, &dev);
        const auto ref = reference::attention(c.p, c.kv_lens, c.q, c.paged_cache());
        EXPECT_TRUE(test::close_to(batch.o, ref.o, test::tolerance_for(dt))) << what;
        const size_t row = size_t(p.qo_heads) * head_dim;  // one request's O elements
        for (int b = 0; b < p.batch; ++b) {
          // Request b alone: a batch of one over the same device page table (indptr from b),
          // planned for a one-SM device (a balanced split would cut it differently).
          Problem one = p;
          one.batch = 1;
          const Plan pl = plan(one, std::span(&c.kv_lens[b], 1), DeviceInfo::synthetic(1));
          Args a = dev.args();
          a.q = static_cast<const T*>(a.q) + b * row;
          a.indptr = dev.indptr.get() + b;
          DeviceBuffer<T> o(row);
          DeviceBuffer<float> lse(p.qo_heads);
          o.fill_bytes(test::kPoisonByte);
          a.o = o.get();
          a.lse = lse.get();
          DeviceBuffer<unsigned char> ws(std::max<size_t>(pl.workspace_bytes, 16));
          ws.fill_bytes(test::kPoisonByte);
          run(pl, a, ws.get(), ws.bytes(), nullptr);
          SPW_CUDA_CHECK(cudaDeviceSynchronize());
          const auto alone = o.download();
          EXPECT_EQ(0, std::memcmp(alone.data(), batch.o_bits.data() + b * row * sizeof(T), row * sizeof(T)))
              << what << ": request " << b << " (kv_len " << c.kv_lens[b] << ") differs alone and in the batch";
          const auto lse_alone = lse.download();
          EXPECT_EQ(0, std::memcmp(lse_alone.data(), batch.lse_bits.data() + b * p.qo_heads, p.qo_heads * 4))
              << what << ": request " << b << " lse";
        }
      });
    }
}

// extends_previous: the queries of a chain (request j = the sequence's first L0 + j rows, each
// with its own copy of the page list, as the CUDA backend's batch-invariant mode plans them)
// share CTAs; every request's O and LSE must have the bits of the unshared plan, for GQA groups
// 1 (eight requests per CTA), 3 and 4, chunks crossed inside the chain, and the reference.
TEST(DecodeAttentionGpu, SharedChainCtasGiveTheBitsOfOneCtaPerRequest) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  for (int group : {1, 3, 4})
    for (int L0 : {1, 250, 500}) {
      const int T = 11, L = L0 + T - 1, D = 64, page = 16;
      const DType dt = group == 3 ? DType::bf16 : DType::f16;
      Case seq = make_case(problem(1, 2 * group, 2, D, dt, page), {L}, rng);
      Case chain;  // the same pages, T requests over its first L0, L0 + 1, ... rows
      chain.p = problem(T, 2 * group, 2, D, dt, page);
      chain.p.fixed_chunk_tokens = 256;
      chain.k_pages = seq.k_pages;
      chain.v_pages = seq.v_pages;
      chain.indptr = {0};
      std::vector<uint8_t> extends;
      for (int j = 0; j < T; ++j) {
        const int len = L0 + j, pages = (len + page - 1) / page;
        chain.kv_lens.push_back(len);
        chain.indices.insert(chain.indices.end(), seq.indices.begin(), seq.indices.begin() + pages);
        chain.indptr.push_back(static_cast<int32_t>(chain.indices.size()));
        chain.last_page_len.push_back(len - (pages - 1) * page);
        extends.push_back(j > 0);
      }
      chain.q = test::random_floats(rng, size_t(T) * chain.p.qo_heads * D, -2.f, 2.f, dt);
      const std::string what = fmt::format("group {} L0 {}", group, L0);
      const auto& dev_info = query_device(0);
      ASSERT_LT(plan(chain.p, chain.kv_lens, dev_info, nullptr, extends).num_items,
                plan(chain.p, chain.kv_lens, dev_info).num_items)
          << what << ": nothing shared";
      for_dtype(dt, [&](auto t) {
        using T_ = decltype(t);
        DeviceCase<T_> dev(chain);
        const Output alone = run_once<T_>(chain, Layout::paged, false, &dev);
        const Output shared = run_once<T_>(chain, Layout::paged, false, &dev, extends);
        EXPECT_EQ(alone.o_bits, shared.o_bits) << what << ": O differs when shared";
        EXPECT_EQ(0, std::memcmp(alone.lse_bits.data(), shared.lse_bits.data(), alone.lse_bits.size() * 4))
            << what << ": LSE differs when shared";
        const auto ref = reference::attention(chain.p, chain.kv_lens, chain.q, chain.paged_cache());
        EXPECT_TRUE(test::close_to(shared.o, ref.o, test::tolerance_for(dt))) << what;
      });
    }
}

TEST(DecodeAttentionGpu, LongRequest32KAndSkewedBatch) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  {
    Case c = make_case(problem(1, 32, 8, 128, DType::f16, 16), {32768}, rng);
    check_against_reference<half>(c, "32K");
  }
  {
    std::vector<int32_t> lens(24, 0);
    for (auto& l : lens) l = std::uniform_int_distribution<int>(1, 300)(rng);
    lens[5] = 8000;  // (contiguous k/v are batch x kv_len_max: 20000 cost ~1 G host randoms)
    lens[9] = 0;
    Case c = make_case(problem(24, 32, 8, 128, DType::bf16, 16), lens, rng);
    check_against_reference<bfloat16>(c, "skewed");
  }
}

TEST(DecodeAttentionGpu, RepeatRunsAreBitwiseIdentical) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  Case c = make_case(problem(3, 32, 8, 128, DType::f16, 16), {9000, 1, 3000}, rng);
  DeviceCase<half> dev(c);
  const Output first = run_once<half>(c, Layout::paged, false, &dev);
  for (int i = 0; i < 3; ++i) {
    const Output again = run_once<half>(c, Layout::paged, false, &dev);
    EXPECT_EQ(first.o_bits, again.o_bits) << "run " << i;
    EXPECT_EQ(0, std::memcmp(first.lse_bits.data(), again.lse_bits.data(), first.lse_bits.size() * 4));
  }
}

// metadata_in_workspace: a second run of the same plan on the same workspace uses the work list
// already there (the runtime copies it once per pass, not once per layer). Proof: the plan's
// host copy is scrambled before the second run, which must still give the first run's bits.
TEST(DecodeAttentionGpu, MetadataInWorkspaceSkipsTheCopy) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  Case c = make_case(problem(3, 32, 8, 128, DType::f16, 16), {9000, 1, 3000}, rng);
  DeviceCase<half> dev(c);
  const Plan pl = plan(c.p, c.kv_lens, query_device(0));
  ASSERT_TRUE(pl.needs_merge);
  DeviceBuffer<unsigned char> ws(pl.workspace_bytes);
  ws.fill_bytes(test::kPoisonByte);
  dev.o.fill_bytes(test::kPoisonByte);
  run(pl, dev.args(), ws.get(), ws.bytes(), nullptr);
  SPW_CUDA_CHECK(cudaDeviceSynchronize());
  const Output first = download(dev);
  EXPECT_TRUE(test::close_to(first.o, reference::attention(c.p, c.kv_lens, c.q, c.paged_cache()).o,
                             test::tolerance_for(c.p.dtype)));
  std::memset(pl.host_meta.get(), 0x7f, pl.meta_bytes);  // a copy now would launch garbage items
  dev.o.fill_bytes(test::kPoisonByte);
  Args a = dev.args();
  a.metadata_in_workspace = true;
  run(pl, a, ws.get(), ws.bytes(), nullptr);
  SPW_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_EQ(download(dev).o_bits, first.o_bits);
}

TEST(DecodeAttentionGpu, GraphCaptureAndReplayWithNewInputs) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  Case c = make_case(problem(4, 16, 4, 128, DType::bf16, 16), {5000, 64, 0, 2000}, rng);
  const Plan pl = plan(c.p, c.kv_lens, query_device(0));
  ASSERT_TRUE(pl.needs_merge);
  DeviceCase<bfloat16> dev(c);
  DeviceBuffer<unsigned char> ws(pl.workspace_bytes);
  ws.fill_bytes(test::kPoisonByte);
  test::CapturedGraph graph([&](cudaStream_t s) { run(pl, dev.args(), ws.get(), ws.bytes(), s); });
  for (int round = 0; round < 2; ++round) {
    if (round == 1) {  // new queries, same shapes: the replay must see them
      c.q = test::random_floats(rng, c.q.size(), -2.f, 2.f, DType::bf16);
      dev.q.upload(test::to_storage<bfloat16>(c.q));
    }
    dev.o.fill_bytes(test::kPoisonByte);
    dev.lse.fill_bytes(test::kPoisonByte);
    graph.replay();
    const Output out = download(dev);
    const auto ref = reference::attention(c.p, c.kv_lens, c.q, c.paged_cache());
    EXPECT_TRUE(test::close_to(out.o, ref.o, test::tolerance_for(DType::bf16))) << "replay " << round;
    expect_lse_close(out.lse, ref.lse, 2e-3, fmt::format("replay {}", round));
  }
}

TEST(DecodeAttentionGpu, LseIsOptional) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  Case c = make_case(problem(2, 8, 2, 64, DType::f16, 16), {3000, 5}, rng);
  const Plan pl = plan(c.p, c.kv_lens, query_device(0));
  DeviceCase<half> dev(c);
  DeviceBuffer<unsigned char> ws(std::max<size_t>(pl.workspace_bytes, 16));
  Args a = dev.args();
  a.lse = nullptr;
  dev.o.fill_bytes(test::kPoisonByte);
  run(pl, a, ws.get(), ws.bytes(), nullptr);
  SPW_CUDA_CHECK(cudaDeviceSynchronize());
  const auto ref = reference::attention(c.p, c.kv_lens, c.q, c.paged_cache());
  EXPECT_TRUE(test::close_to(test::to_floats(dev.o.download()), ref.o, test::tolerance_for(DType::f16)));
}

TEST(DecodeAttentionGpu, MergeStatesMatchesReference) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  const int rows = 37, n = 5, d = 128;
  std::vector<float> v = test::random_floats(rng, size_t(n) * rows * d, -1.f, 1.f, DType::f16);
  std::vector<float> lse = test::random_floats(rng, size_t(n) * rows, -4.f, 4.f);
  for (int i = 0; i < n; ++i) lse[size_t(i) * rows + 3] = -INFINITY;  // an all-empty row
  lse[size_t(2) * rows + 7] = -INFINITY;                                 // one empty state
  std::vector<double> vd(v.begin(), v.end()), ld(lse.begin(), lse.end());
  const auto ref = reference::merge_states(rows, n, d, vd, ld);
  DeviceBuffer<float> lse_in(lse), lse_out(rows);
  for (DType in : {DType::f32, DType::f16})
    for (DType out : {DType::f32, DType::f16, DType::bf16}) {
      DeviceBuffer<float> vin_f(v);
      DeviceBuffer<half> vin_h(test::to_storage<half>(v));
      DeviceBuffer<unsigned char> vout(size_t(rows) * d * 4);
      vout.fill_bytes(test::kPoisonByte);
      lse_out.fill_bytes(test::kPoisonByte);
      const void* vin = in == DType::f32 ? static_cast<const void*>(vin_f.get()) : vin_h.get();
      merge_states({rows, n, d, in, out}, vin, lse_in.get(), vout.get(), lse_out.get(), nullptr);
      SPW_CUDA_CHECK(cudaDeviceSynchronize());
      const auto bytes = vout.download();
      std::vector<float> got(size_t(rows) * d);
      for (size_t i = 0; i < got.size(); ++i) {
        if (out == DType::f32) std::memcpy(&got[i], &bytes[i * 4], 4);
        else if (out == DType::f16) { half h; std::memcpy(&h, &bytes[i * 2], 2); got[i] = to_float(h); }
        else { bfloat16 h; std::memcpy(&h, &bytes[i * 2], 2); got[i] = to_float(h); }
      }
      const auto what = fmt::format("{} -> {}", dtype_name(in), dtype_name(out));
      EXPECT_TRUE(test::close_to(got, ref.o, test::tolerance_for(out == DType::f32 ? DType::f16 : out))) << what;
      for (int c = 0; c < d; ++c) EXPECT_EQ(got[size_t(3) * d + c], 0.f) << what;
      expect_lse_close(lse_out.download(), ref.lse, 1e-4, what);
    }
}
