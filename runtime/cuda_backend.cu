// CUDA backend (see cuda_backend.h): sequences, the paged KV pool and the forward pass.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <optional>

#include "kernels/common/device.h"
#include "kernels/common/launch.cuh"
#include "kernels/decode_attention/decode_attention.h"
#include "kernels/flat_gemm/flat_gemm.h"
#include "kernels/small_ops/small_ops.h"
#include "kernels/tree_attention/tree_attention.h"
#include "runtime/cuda_backend.h"
#include "runtime/cuda_kernels.cuh"
#include "runtime/cuda_resources.cuh"
#include "runtime/cuda_weights.cuh"
#include "runtime/forward_passes.h"
#include "runtime/paged_kv.h"

namespace spw::rt {
namespace {

using cuda::Buffer16;
using Bytes = DeviceBuffer<std::byte>;

// The five products of a pass of m tokens, planned once per m at construction.
struct GemmPlans {
  flat_gemm::Plan qkv, wo, gate_up, down, lm_head;
};

// Per-pass metadata, one int32 array on the host (pinned) and its device mirror; sections start
// at multiples of 64 elements (256 bytes).
struct MetaLayout {
  size_t ids = 0, positions, rows, indptr, last_page_len, indices, total;
  MetaLayout(int max_pass_tokens, int num_pages) {
    auto up = [](size_t n) { return (n + 63) / 64 * 64; };
    positions = up(max_pass_tokens);
    rows = positions + up(max_pass_tokens);
    indptr = rows + up(max_pass_tokens);
    last_page_len = indptr + up(max_pass_tokens + 1);
    indices = last_page_len + up(max_pass_tokens);
    total = indices + up(num_pages);
  }
};

class CudaModel final : public Model {
 public:
  CudaModel(const CudaBackendOptions& o, const DeviceInfo& device,
            const std::function<cuda::DeviceWeights(cudaStream_t)>& make_weights);
  ~CudaModel() override { cudaSetDevice(device_.ordinal); }  // members free on their device

  const ModelConfig& config() const override { return w_.config; }
  size_t weight_bytes() const override { return w_.bytes(); }
  std::string backend_name() const override { return "cuda"; }
  int max_tokens() const override { return max_tokens_; }
  const CudaGraphStats& graph_stats() const { return graph_stats_; }

  int create_sequence() override { return book_->create(); }
  void free_sequence(int id) override {
    check_seq(id, "free_sequence");
    book_->release(id);
  }
  int cached_tokens(int id) const override {
    check_seq(id, "cached_tokens");
    return book_->length(id);
  }
  void rollback(int id, int new_len) override;
  void keep_tokens(int id, int base, std::span<const int32_t> offsets) override;
  void forward(std::span<const SeqInput> batch, std::vector<float>& logits) override { run(batch, {&logits, nullptr}); }
  void forward_argmax(std::span<const SeqInput> batch, std::vector<int32_t>& tokens) override {
    run(batch, {nullptr, &tokens});
  }
  void forward_topk(std::span<const SeqInput> batch, int k, std::vector<TopToken>& top) override {
    check_top_k(k, "Model::forward_topk");
    Output o;
    o.top = &top;
    o.k = k;
    run(batch, o);
  }
  std::span<const float> forward_view_topk(std::span<const SeqInput> batch, int k, std::vector<TopToken>& top) override {
    check_top_k(k, "Model::forward_view_topk");
    Output o;
    o.top = &top;
    o.k = k;
    return run_view(batch, o);
  }
  std::span<const float> forward_view(std::span<const SeqInput> batch) override { return run_view(batch, {}); }

 private:
  void check_seq(int id, const char* where) const {
    SPW_CHECK(book_->live(id), "Model::{}: seq_id = {}: no such sequence", where, id);
  }
  void use_device() const { SPW_CUDA_CHECK(cudaSetDevice(device_.ordinal)); }
  size_t q_dim() const { return size_t(w_.config.num_heads) * w_.config.head_dim; }
  size_t kv_dim() const { return size_t(w_.config.num_kv_heads) * w_.config.head_dim; }
  uint16_t* k_plane(int layer) const { return pool_.get() + size_t(2 * layer) * plane_elems_; }
  uint16_t* v_plane(int layer) const { return pool_.get() + size_t(2 * layer + 1) * plane_elems_; }
  void make_biases_uniform();
  void plan_gemms();
  void ensure_attention_workspace(size_t bytes);
  void ensure_meta(size_t elems);
  // What a forward returns: the wanted rows' logits (into the caller's vector, or into
  // logits_host_ for forward_view), only their greedy tokens, or their top k (alone, or with
  // the logits in logits_host_: forward_view_topk).
  struct Output {
    std::vector<float>* logits = nullptr;
    std::vector<int32_t>* tokens = nullptr;
    std::vector<TopToken>* top = nullptr;
    int k = 0;  // of `top`
    bool pinned_logits = false;
    float* logits_dst = nullptr;  // set by run(): where the wanted rows' logits go
  };
  // forward_view's rows (with `o`'s other outputs): the logits into logits_host_ (pinned), viewed.
  std::span<const float> run_view(std::span<const SeqInput> batch, Output o) {
    o.pinned_logits = true;
    const size_t floats = run(batch, o);
    return {logits_host_.get(), floats};
  }
  // Returns the number of logits written (wanted rows x vocab_size; 0 for argmax / top-k output).
  size_t run(std::span<const SeqInput> batch, Output out);
  void reserve_logits_host(size_t floats);
  void run_pass(const std::vector<PassPiece>& pass, std::span<const SeqInput> batch, Output out);
  // A pass's launches (everything after its metadata copy), as a CUDA graph when it has at most
  // cuda_graph_tokens tokens: `slot` is its (tokens, attention kind, output kind).
  template <class Launches>
  void issue(int tokens, int slot, const Launches& launches);
  template <class Launches>
  cudaGraph_t capture(const Launches& launches);
  void gemm(const flat_gemm::Plan& p, const void* x, const void* w, const Buffer16& bias, const void* residual,
            void* y) {
    flat_gemm::Args a{x, w, bias.size() ? bias.get() : nullptr, residual, y, lt_.get()};
    flat_gemm::run(p, a, gemm_ws_.get(), gemm_ws_.bytes(), stream_.get());
  }

  DeviceInfo device_;
  CudaBackendOptions opt_;
  int max_tokens_ = 0;
  cuda::Stream stream_;
  cuda::CublasLt lt_;
  cuda::Event meta_copied_;
  cuda::DeviceWeights w_;
  RopeParams rope_;
  std::optional<PagedKvBook> book_;
  size_t plane_elems_ = 0;  // one K or V plane of one layer: num_pages * page_size * kv_dim
  Buffer16 pool_;           // [layer][K | V] planes
  Buffer16 x_, h_, qkv_, q_, k_, v_, att_, ffn_;
  DeviceBuffer<float> logits_;
  DeviceBuffer<int32_t> argmax_;  // [max_forward_tokens] greedy token of each logits_ row
  cuda::PinnedArray<int32_t> argmax_host_;  // argmax_ of the pass, copied back with one async copy
  DeviceBuffer<TopToken> top_;              // [max_forward_tokens, top_k_] top tokens of each logits_ row
  cuda::PinnedArray<TopToken> top_host_;    // top_ of the pass (one async copy)
  int top_k_ = 0;                           // min(vocab, kMaxTopK): the device always ranks that many
  cuda::PinnedArray<float> logits_host_;    // forward_view()'s rows (reserve_logits_host)
  std::vector<GemmPlans> gemm_plans_;  // [m - 1]
  Bytes gemm_ws_, attn_ws_;
  std::optional<MetaLayout> meta_;
  cuda::PinnedArray<int32_t> meta_host_, keep_host_;
  DeviceBuffer<int32_t> meta_dev_, keep_dev_;
  // Plans of the forward in flight: their metadata (carved from plan_host_, pinned) is read by
  // the launches until the final sync, so they live until the next forward, which rewinds the
  // arena. One forward's plans fit in it after the first few forwards: planning allocates nothing.
  PlanHostArena plan_host_{size_t(1) << 20};
  std::vector<decode_attention::Plan> decode_plans_;
  std::vector<tree_attention::Plan> tree_plans_;
  PageTable table_;
  TokenAttentionTable token_table_;  // batch-invariant mode's attention table of the pass
  std::vector<int> table_seqs_, table_lens_;
  std::vector<int32_t> positions_, parents_, sizes_;
  std::vector<int64_t> keep_src_, keep_dst_;
  // CUDA graphs: per slot the executable graph and the launch record it was captured from.
  struct GraphSlot {
    cuda::GraphExec exec;
    LaunchRecord record;
  };
  static constexpr int kOutputKinds = 5;  // 0 none, 1 logits, 2 argmax, 3 top-k, 4 logits + top-k
  static constexpr int kSlotsPerTokens = 2 * kOutputKinds;  // attention kind (tree, decode) x output kind
  static int graph_slot(int tokens, bool decode, int output_kind) {
    return (tokens - 1) * kSlotsPerTokens + (decode ? kOutputKinds : 0) + output_kind;
  }
  std::vector<GraphSlot> graphs_;  // [graph_slot(tokens, decode, output kind)]
  LaunchRecord record_;            // this pass's launches (reused: no allocation in steady state)
  CudaGraphStats graph_stats_;
};

CudaModel::CudaModel(const CudaBackendOptions& o, const DeviceInfo& device,
                     const std::function<cuda::DeviceWeights(cudaStream_t)>& make_weights)
    : device_(device), opt_(o), w_(make_weights(stream_.get())) {
  const ModelConfig& c = w_.config;
  max_tokens_ = o.max_tokens > 0 ? o.max_tokens : c.max_context;
  rope_ = rope_params(c, w_.neox_rope);
  make_biases_uniform();

  const size_t T = o.max_forward_tokens, H = c.hidden, I = c.intermediate;
  x_ = Buffer16(T * H);
  h_ = Buffer16(T * H);
  qkv_ = Buffer16(T * (q_dim() + 2 * kv_dim()));
  q_ = Buffer16(T * q_dim());
  k_ = Buffer16(T * kv_dim());
  v_ = Buffer16(T * kv_dim());
  att_ = Buffer16(T * q_dim());
  ffn_ = Buffer16(T * I);
  logits_ = DeviceBuffer<float>(T * c.vocab_size);
  argmax_ = DeviceBuffer<int32_t>(T);
  argmax_host_ = cuda::PinnedArray<int32_t>(T);
  top_k_ = std::min(c.vocab_size, kMaxTopK);
  top_ = DeviceBuffer<TopToken>(T * top_k_);
  top_host_ = cuda::PinnedArray<TopToken>(T * top_k_);
  plan_gemms();
  graphs_.resize(size_t(std::min(o.cuda_graph_tokens, o.max_forward_tokens)) * kSlotsPerTokens);

  // KV pool: what the option asks, else 64 full-length sequences within 3/4 of the free memory
  // (what is left serves a second model, e.g. a drafter, and the rare workspace growth).
  const size_t dsize = dtype_size(o.dtype);
  const long long page_bytes = static_cast<long long>(o.page_size) * kv_dim() * 2 * c.num_layers * dsize;
  long long pages = 0;
  if (o.kv_cache_bytes > 0) {
    pages = o.kv_cache_bytes / page_bytes;
    SPW_CHECK_ARG(pages >= 1, "make_cuda_model", "options.kv_cache_bytes", o.kv_cache_bytes,
                  fmt::format("must hold at least one KV page ({} bytes)", page_bytes));
  } else {
    size_t free_bytes = 0, total_bytes = 0;
    SPW_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    const long long want = 64LL * ((max_tokens_ + o.page_size - 1) / o.page_size);
    pages = std::min<long long>(want, static_cast<long long>(free_bytes / 4 * 3) / page_bytes);
    SPW_CHECK(pages >= 1, "make_cuda_model: {} bytes of free device memory cannot hold one KV page of {} bytes",
              free_bytes, page_bytes);
  }
  pages = std::min<long long>(pages, ((1LL << 31) - 1) / o.page_size);
  book_.emplace(static_cast<int>(pages), o.page_size, max_tokens_);
  plane_elems_ = static_cast<size_t>(pages) * o.page_size * kv_dim();
  pool_ = Buffer16(2 * size_t(c.num_layers) * plane_elems_);

  meta_.emplace(o.max_forward_tokens, static_cast<int>(pages));
  meta_host_ = cuda::PinnedArray<int32_t>(meta_->total);
  meta_dev_ = DeviceBuffer<int32_t>(meta_->total);
  keep_host_ = cuda::PinnedArray<int32_t>(2 * size_t(max_tokens_));
  keep_dev_ = DeviceBuffer<int32_t>(2 * size_t(max_tokens_));

  // Attention workspace for the usual worst cases (one full-length sequence decoding, and a
  // tree of the largest size at the end of one); rare larger plans grow it (outside the layers).
  decode_attention::Problem dp{1, c.num_heads, c.num_kv_heads, c.head_dim, o.dtype, decode_attention::Layout::paged,
                               o.page_size};
  const int32_t full = max_tokens_;
  size_t ws = decode_attention::plan(dp, std::span(&full, 1), device_).workspace_bytes;
  const int32_t tree = std::min({tree_attention::kMaxTreeTokens, o.max_forward_tokens, max_tokens_});
  const int32_t prefix = max_tokens_ - tree;
  std::vector<int32_t> chain(tree);
  for (int i = 0; i < tree; ++i) chain[i] = i - 1;
  tree_attention::Problem tp{1, c.num_heads, c.num_kv_heads, c.head_dim, o.dtype, o.page_size};
  ws = std::max(ws, tree_attention::plan(tp, std::span(&prefix, 1), std::span(&tree, 1), chain, device_).workspace_bytes);
  attn_ws_ = Bytes(ws);
  stream_.sync();
}

// One flag per product for all layers: a layer without the bias others have gets zeros.
void CudaModel::make_biases_uniform() {
  auto fix = [&](Buffer16 cuda::DeviceLayer::*bias, size_t n) {
    bool any = false;
    for (auto& l : w_.layers) any |= (l.*bias).size() > 0;
    if (!any) return;
    for (auto& l : w_.layers)
      if ((l.*bias).size() == 0) {
        l.*bias = Buffer16(n);
        SPW_CUDA_CHECK(cudaMemsetAsync((l.*bias).get(), 0, (l.*bias).bytes(), stream_.get()));
      }
  };
  const ModelConfig& c = w_.config;
  fix(&cuda::DeviceLayer::bqkv, q_dim() + 2 * kv_dim());
  fix(&cuda::DeviceLayer::bo, c.hidden);
  fix(&cuda::DeviceLayer::bgu, 2 * size_t(c.intermediate));
  fix(&cuda::DeviceLayer::bdown, c.hidden);
}

void CudaModel::plan_gemms() {
  const ModelConfig& c = w_.config;
  const cuda::DeviceLayer& l0 = w_.layers[0];
  const DType dt = opt_.dtype;
  size_t ws = 0;
  for (int m = 1; m <= opt_.max_forward_tokens; ++m) {
    GemmPlans g;
    auto plan = [&](int n, int k, bool bias, bool residual, bool swiglu, DType out) {
      flat_gemm::Problem p{dt, out, m, n, k, bias, residual, swiglu};
      flat_gemm::Options o;
      o.batch_invariant = opt_.batch_invariant;
      flat_gemm::Plan pl = flat_gemm::plan(p, device_, o);
      ws = std::max(ws, pl.workspace_bytes);
      return pl;
    };
    g.qkv = plan(static_cast<int>(q_dim() + 2 * kv_dim()), c.hidden, l0.bqkv.size() > 0, false, false, dt);
    g.wo = plan(c.hidden, static_cast<int>(q_dim()), l0.bo.size() > 0, true, false, dt);
    g.gate_up = plan(2 * c.intermediate, c.hidden, l0.bgu.size() > 0, false, true, dt);
    g.down = plan(c.hidden, c.intermediate, l0.bdown.size() > 0, true, false, dt);
    g.lm_head = plan(c.vocab_size, c.hidden, w_.output_bias.size() > 0, false, false, DType::f32);
    gemm_plans_.push_back(g);
  }
  gemm_ws_ = Bytes(std::max<size_t>(ws, 256));
}

void CudaModel::ensure_attention_workspace(size_t bytes) {
  if (bytes <= attn_ws_.bytes()) return;
  const size_t grown = std::max(bytes, attn_ws_.bytes() + attn_ws_.bytes() / 2);
  stream_.sync();  // launches already queued may still use the old buffer
  attn_ws_ = Bytes();
  attn_ws_ = Bytes(grown);
}

// Grows the metadata staging (pinned) and its device mirror to `elems` int32 (batch-invariant
// passes list every token's KV pages or rows). The previous pass may still read both: sync first.
void CudaModel::ensure_meta(size_t elems) {
  if (elems <= meta_host_.size()) return;
  const size_t grown = std::max(elems, meta_host_.size() + meta_host_.size() / 2);
  meta_copied_.wait();
  stream_.sync();
  meta_host_ = cuda::PinnedArray<int32_t>();
  meta_dev_ = DeviceBuffer<int32_t>();
  meta_host_ = cuda::PinnedArray<int32_t>(grown);
  meta_dev_ = DeviceBuffer<int32_t>(grown);
}

void CudaModel::rollback(int id, int new_len) {
  check_seq(id, "rollback");
  check_rollback(book_->length(id), new_len);
  book_->truncate(id, new_len);
}

void CudaModel::keep_tokens(int id, int base, std::span<const int32_t> offsets) {
  check_seq(id, "keep_tokens");
  check_keep_tokens(book_->length(id), base, offsets);
  use_device();
  std::vector<int64_t>& src = keep_src_;
  std::vector<int64_t>& dst = keep_dst_;
  src.clear();
  dst.clear();
  book_->keep(id, base, offsets, src, dst);
  if (src.empty()) return;
  const int moves = static_cast<int>(src.size());
  for (int i = 0; i < moves; ++i) {
    keep_host_.get()[i] = static_cast<int32_t>(src[i]);
    keep_host_.get()[moves + i] = static_cast<int32_t>(dst[i]);
  }
  SPW_CUDA_CHECK(cudaMemcpyAsync(keep_dev_.get(), keep_host_.get(), 2 * size_t(moves) * sizeof(int32_t),
                                 cudaMemcpyHostToDevice, stream_.get()));
  cuda::move_rows(pool_.get(), 2 * w_.config.num_layers, plane_elems_, static_cast<int>(kv_dim()), keep_dev_.get(),
                  keep_dev_.get() + moves, moves, stream_.get());
  stream_.sync();  // keep_host_ is reused by the next call
}

// Grows geometrically up to a full pass (max_forward_tokens rows): a run of sampled steps
// allocates once or twice, then never. The old buffer's cudaFreeHost waits for the device,
// which is idle here (the previous forward ended with a sync).
void CudaModel::reserve_logits_host(size_t floats) {
  if (logits_host_.size() >= floats) return;
  const size_t full_pass = size_t(opt_.max_forward_tokens) * w_.config.vocab_size;
  logits_host_ = cuda::PinnedArray<float>(std::max(floats, std::min(2 * logits_host_.size(), full_pass)));
}

size_t CudaModel::run(std::span<const SeqInput> batch, Output out) {
  const ModelConfig& c = w_.config;
  ForwardLimits lim{c.vocab_size, max_tokens_, opt_.max_forward_tokens, tree_attention::kMaxTreeTokens};
  const ForwardPasses fp = plan_forward_passes(batch, [&](int id) {
    check_seq(id, "forward");
    return book_->length(id);
  }, lim);
  use_device();
  // Reserve every sequence's new tokens first: a full pool fails here, with nothing changed.
  size_t reserved = 0;
  auto undo = [&] {
    for (size_t b = 0; b < reserved; ++b) book_->truncate(batch[b].seq_id, fp.cached[b]);
  };
  try {
    for (; reserved < batch.size(); ++reserved) book_->append(batch[reserved].seq_id, int(batch[reserved].tokens.size()));
  } catch (const Error& e) {
    undo();
    fail("Model::forward: batch[{}] (seq_id {}): {}", reserved, batch[reserved].seq_id, e.what());
  }
  try {
    decode_plans_.clear();
    tree_plans_.clear();
    plan_host_.reset();  // the previous forward ended with a sync: nothing reads the arena now
    const bool logits_out = out.logits || out.pinned_logits;
    const size_t floats = logits_out ? static_cast<size_t>(fp.total_rows) * c.vocab_size : 0;
    if (out.logits) {
      out.logits->resize(floats);
      out.logits_dst = out.logits->data();
    } else if (out.pinned_logits) {
      reserve_logits_host(floats);
      out.logits_dst = logits_host_.get();
    }
    if (out.tokens) out.tokens->resize(fp.total_rows);
    if (out.top) out.top->resize(size_t(fp.total_rows) * out.k);
    for (const auto& pass : fp.passes) run_pass(pass, batch, out);
    stream_.sync();
    return floats;
  } catch (...) {
    cudaStreamSynchronize(stream_.get());  // let queued work finish before the plans go
    undo();
    throw;
  }
}

template <class Launches>
cudaGraph_t CudaModel::capture(const Launches& launches) {
  cudaStream_t s = stream_.get();
  SPW_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
  cudaGraph_t graph = nullptr;
  try {
    launches();
  } catch (...) {
    cudaStreamEndCapture(s, &graph);  // ends the (invalidated) capture
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    throw;
  }
  SPW_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
  return graph;
}

template <class Launches>
void CudaModel::issue(int tokens, int slot, const Launches& launches) {
  if (tokens > opt_.cuda_graph_tokens || !graph_stats_.disabled.empty()) {
    ++graph_stats_.plain;
    launches();
    return;
  }
  // What the pass would launch; the host checks of the launches run (and throw) here.
  record_.clear();
  {
    RecordLaunches recording(&record_);
    launches();
  }
  GraphSlot& g = graphs_[slot];
  if (g.exec && record_ == g.record) {
    ++graph_stats_.replays;
    SPW_CUDA_CHECK(cudaGraphLaunch(g.exec.get(), stream_.get()));
    return;
  }
  try {
    const cuda::Graph graph(capture(launches));
    bool updated = false;
    if (g.exec) {
      cudaGraphExecUpdateResultInfo info{};
      updated = cudaGraphExecUpdate(g.exec.get(), graph.get(), &info) == cudaSuccess;
      if (!updated) cudaGetLastError();  // a refused update (other topology) is not an error
    }
    if (updated) {
      ++graph_stats_.updates;
    } else {
      g.exec.reset();
      cudaGraphExec_t exec = nullptr;
      SPW_CUDA_CHECK(cudaGraphInstantiate(&exec, graph.get(), 0));
      g.exec.reset(exec);
      ++graph_stats_.instantiations;
    }
  } catch (const Error& e) {
    // Capture or instantiation failed on this device: launch kernel by kernel from now on.
    g.exec.reset();
    graph_stats_.disabled = e.what();
    std::fprintf(stderr, "spillway: CUDA backend: CUDA graphs disabled, kernels launched one by one: %s\n", e.what());
    ++graph_stats_.plain;
    launches();
    return;
  }
  ++graph_stats_.captures;
  std::swap(g.record, record_);
  SPW_CUDA_CHECK(cudaGraphLaunch(g.exec.get(), stream_.get()));
}

void CudaModel::run_pass(const std::vector<PassPiece>& pass, std::span<const SeqInput> batch, Output out) {
  const ModelConfig& c = w_.config;
  const MetaLayout& ml = *meta_;
  const DType dt = opt_.dtype;
  // Batch-invariant passes attend like decode passes: one decode_attention request per token.
  const bool invariant = opt_.batch_invariant;
  const bool decode =
      invariant || std::all_of(pass.begin(), pass.end(), [](const PassPiece& p) { return p.count == 1; });
  positions_.clear();
  parents_.clear();
  sizes_.clear();
  table_seqs_.clear();
  table_lens_.clear();
  for (const PassPiece& p : pass) {
    piece_positions(p, batch[p.batch_index], positions_, parents_);
    sizes_.push_back(p.count);
    if (invariant) continue;  // its table is per token (token_attention_table)
    table_seqs_.push_back(p.seq_id);
    table_lens_.push_back(decode ? p.prefix + 1 : p.prefix);  // decode reads its own new row from the pool
  }
  const int T = static_cast<int>(positions_.size()), B = static_cast<int>(pass.size());
  if (invariant) {
    token_attention_table(pass, parents_, *book_, token_table_);
    ensure_meta(ml.indices + token_table_.table.indices.size());
  } else {
    book_->page_table(table_seqs_, table_lens_, table_);
  }
  const PageTable& table = invariant ? token_table_.table : table_;  // the pass's attention table

  // Host metadata -> pinned staging (after the previous pass's copy out of it) -> device.
  meta_copied_.wait();
  int32_t* hm = meta_host_.get();
  int t = 0;
  for (const PassPiece& p : pass)
    for (int j = 0; j < p.count; ++j, ++t) {
      hm[ml.ids + t] = batch[p.batch_index].tokens[p.first + j];
      hm[ml.positions + t] = positions_[t];
      hm[ml.rows + t] = static_cast<int32_t>(book_->row(p.seq_id, p.prefix + j));
    }
  std::copy(table.indptr.begin(), table.indptr.end(), hm + ml.indptr);
  std::copy(table.last_page_len.begin(), table.last_page_len.end(), hm + ml.last_page_len);
  std::copy(table.indices.begin(), table.indices.end(), hm + ml.indices);
  SPW_CUDA_CHECK(cudaMemcpyAsync(meta_dev_.get(), hm, (ml.indices + table.indices.size()) * sizeof(int32_t),
                                 cudaMemcpyHostToDevice, stream_.get()));
  meta_copied_.record(stream_.get());
  const int32_t* dm = meta_dev_.get();

  // Attention plan of this pass (shared by every layer).
  const decode_attention::Plan* dplan = nullptr;
  const tree_attention::Plan* tplan = nullptr;
  if (decode) {
    decode_attention::Problem p{invariant ? T : B, c.num_heads, c.num_kv_heads, c.head_dim, dt,
                                decode_attention::Layout::paged, invariant ? token_table_.page_size : opt_.page_size};
    if (invariant) p.fixed_chunk_tokens = kInvariantChunkTokens;
    const std::span<const int32_t> lens = invariant ? std::span<const int32_t>(token_table_.kv_lens) : table_lens_;
    const std::span<const uint8_t> extends =
        invariant ? std::span<const uint8_t>(token_table_.extends_previous) : std::span<const uint8_t>();
    decode_plans_.push_back(decode_attention::plan(p, lens, device_, &plan_host_, extends));
    dplan = &decode_plans_.back();
    if (opt_.debug_checks)
      decode_attention::validate_page_table(p, lens, table.indptr, table.indices, table.last_page_len,
                                            book_->num_pages() * (p.page_size == 1 ? opt_.page_size : 1));
    ensure_attention_workspace(dplan->workspace_bytes);
  } else {
    tree_attention::Problem p{B, c.num_heads, c.num_kv_heads, c.head_dim, dt, opt_.page_size};
    tree_plans_.push_back(tree_attention::plan(p, table_lens_, sizes_, parents_, device_, &plan_host_));
    tplan = &tree_plans_.back();
    if (opt_.debug_checks) {
      tree_attention::validate_page_table(*tplan, table.indptr, table.indices, table.last_page_len,
                                          book_->num_pages());
      SPW_CHECK(tplan->positions == positions_, "CudaModel: tree_attention positions differ from the backend's");
    }
    ensure_attention_workspace(tplan->workspace_bytes);
  }

  const GemmPlans& g = gemm_plans_[T - 1];
  cudaStream_t s = stream_.get();
  const int qkv_dim = static_cast<int>(q_dim() + 2 * kv_dim());
  int wanted = 0;
  for (const PassPiece& p : pass) wanted += p.out_count;
  auto launches = [&] {
    small_ops::embedding({dt, T, c.vocab_size, c.hidden, dm + ml.ids, w_.token_embd.get(), x_.get(), nullptr}, s);
    for (int l = 0; l < c.num_layers; ++l) {
      const cuda::DeviceLayer& L = w_.layers[l];
      small_ops::rmsnorm({dt, T, c.hidden, x_.get(), nullptr, L.attn_norm.get(), h_.get(), c.rms_eps}, s);
      gemm(g.qkv, h_.get(), L.wqkv.get(), L.bqkv, nullptr, qkv_.get());
      small_ops::RopeArgs ra{dt, T, c.num_heads, c.num_kv_heads, qkv_.get(), qkv_.get() + q_dim(), qkv_dim, qkv_dim,
                             dm + ml.positions, rope_};
      small_ops::rope(ra, s);
      cuda::store_qkv({T, static_cast<int>(q_dim()), static_cast<int>(kv_dim()), qkv_.get(), q_.get(),
                       decode ? nullptr : k_.get(), decode ? nullptr : v_.get(), k_plane(l), v_plane(l),
                       dm + ml.rows},
                      s);
      auto paged = [&](auto& a) {  // the fields both attention families share
        a.q = q_.get();
        a.k_pages = k_plane(l);
        a.v_pages = v_plane(l);
        a.indptr = dm + ml.indptr;
        a.indices = dm + ml.indices;
        a.last_page_len = dm + ml.last_page_len;
        a.o = att_.get();
        a.metadata_in_workspace = l > 0;  // layer 0's run copied the pass's metadata in
      };
      if (decode) {
        decode_attention::Args a;
        paged(a);
        decode_attention::run(*dplan, a, attn_ws_.get(), attn_ws_.bytes(), s);
      } else {
        tree_attention::Args a;
        paged(a);
        a.k_tree = k_.get();
        a.v_tree = v_.get();
        tree_attention::run(*tplan, a, attn_ws_.get(), attn_ws_.bytes(), s);
      }
      gemm(g.wo, att_.get(), L.wo.get(), L.bo, x_.get(), x_.get());  // x += att . Wo^T
      small_ops::rmsnorm({dt, T, c.hidden, x_.get(), nullptr, L.ffn_norm.get(), h_.get(), c.rms_eps}, s);
      gemm(g.gate_up, h_.get(), L.wgu.get(), L.bgu, nullptr, ffn_.get());  // silu(gate) * up
      gemm(g.down, ffn_.get(), L.wdown.get(), L.bdown, x_.get(), x_.get());  // x += ffn . Wdown^T
    }
    // Output: the lm_head over the pass (skipped when no row of it is wanted, e.g. a prefill).
    if (wanted > 0) {
      small_ops::rmsnorm({dt, T, c.hidden, x_.get(), nullptr, w_.output_norm.get(), h_.get(), c.rms_eps}, s);
      gemm(g.lm_head, h_.get(), w_.lm_head(), w_.output_bias, nullptr, logits_.get());
      if (out.tokens) small_ops::argmax(logits_.get(), T, c.vocab_size, argmax_.get(), s);
      if (out.top) small_ops::topk(logits_.get(), T, c.vocab_size, top_k_, top_.get(), s);
    }
  };
  const int output_kind = wanted == 0 ? 0 : out.tokens ? 2 : !out.top ? 1 : out.logits_dst ? 4 : 3;
  issue(T, graph_slot(T, decode, output_kind), launches);
  // After the sync: each piece's wanted rows from a pass-wide pinned array (`stride` entries a
  // row) to their place in the caller's vector (the first `width` of them).
  auto scatter_rows = [&](const auto* src, int stride, int width, auto* dst) {
    stream_.sync();
    int pass_row = 0;
    for (const PassPiece& p : pass) {
      for (int r = 0; r < p.out_count; ++r)
        std::copy_n(src + size_t(pass_row + p.out_first + r) * stride, width, dst + size_t(p.out_row + r) * width);
      pass_row += p.count;
    }
  };
  // Greedy tokens: the pass's argmax rows in one copy to pinned memory (a pageable destination
  // would make the driver stage the copy), then each piece's rows to its place.
  if (out.tokens) {
    if (wanted > 0) {
      SPW_CUDA_CHECK(cudaMemcpyAsync(argmax_host_.get(), argmax_.get(), size_t(T) * sizeof(int32_t),
                                     cudaMemcpyDeviceToHost, s));
      scatter_rows(argmax_host_.get(), 1, 1, out.tokens->data());
    }
    if (opt_.debug_checks) stream_.sync();
    return;
  }
  // Top k: likewise, the first out.k of each row's top_k_ entries (after the logits' copies
  // below when both are wanted: one sync for all).
  auto top_rows = [&] {
    if (wanted > 0) scatter_rows(top_host_.get(), top_k_, out.k, out.top->data());
    if (opt_.debug_checks) stream_.sync();
  };
  if (out.top && wanted > 0)
    SPW_CUDA_CHECK(cudaMemcpyAsync(top_host_.get(), top_.get(), size_t(T) * top_k_ * sizeof(TopToken),
                                   cudaMemcpyDeviceToHost, s));
  if (out.top && !out.logits_dst) return top_rows();
  // Logits: the wanted rows back in the caller's order, runs of rows that are adjacent on both
  // sides in one copy (into logits_host_, pinned, for forward_view; into the caller's pageable
  // vector for forward, which the driver stages).
  const size_t V = c.vocab_size;
  auto copy_rows = [&](int src_row, int dst_row, int rows) {
    SPW_CUDA_CHECK(cudaMemcpyAsync(out.logits_dst + size_t(dst_row) * V, logits_.get() + size_t(src_row) * V,
                                   size_t(rows) * V * sizeof(float), cudaMemcpyDeviceToHost, s));
  };
  int run_src = 0, run_dst = 0, run_rows = 0, pass_row = 0;
  for (const PassPiece& p : pass) {
    if (p.out_count > 0) {
      const int src = pass_row + p.out_first;
      if (run_rows > 0 && src == run_src + run_rows && p.out_row == run_dst + run_rows) {
        run_rows += p.out_count;
      } else {
        if (run_rows > 0) copy_rows(run_src, run_dst, run_rows);
        run_src = src, run_dst = p.out_row, run_rows = p.out_count;
      }
    }
    pass_row += p.count;
  }
  if (run_rows > 0) copy_rows(run_src, run_dst, run_rows);
  if (out.top) return top_rows();
  if (opt_.debug_checks) stream_.sync();  // a failing launch is reported by the pass that made it
}

void require_device(int ordinal, const char* where) {
  if (auto why = gpu_unavailable_reason()) fail("{}: the CUDA backend cannot run: {}", where, *why);
  const int n = cuda_device_count();
  SPW_CHECK_ARG(ordinal < n, where, "options.device", ordinal, fmt::format("must be < {} (CUDA devices present)", n));
  SPW_CUDA_CHECK(cudaSetDevice(ordinal));
}

}  // namespace

CudaGraphStats cuda_graph_stats(const Model& model) {
  const auto* m = dynamic_cast<const CudaModel*>(&model);
  SPW_CHECK(m != nullptr, "cuda_graph_stats: model of backend '{}': not a CUDA model", model.backend_name());
  return m->graph_stats();
}

std::unique_ptr<Model> make_cuda_model(LlamaWeights weights, const CudaBackendOptions& options) {
  constexpr const char* w = "make_cuda_model";
  check_cuda_weights(weights, options, w);
  require_device(options.device, w);
  const DeviceInfo device = query_device(options.device);
  return std::make_unique<CudaModel>(options, device, [&](cudaStream_t s) {
    return cuda::upload_weights(std::move(weights), options.dtype, s);
  });
}

std::unique_ptr<Model> make_cuda_model_random(const ModelConfig& config, uint64_t seed,
                                              const CudaBackendOptions& options) {
  constexpr const char* w = "make_cuda_model_random";
  check_cuda_backend(config, options, w);
  require_device(options.device, w);
  const DeviceInfo device = query_device(options.device);
  return std::make_unique<CudaModel>(options, device, [&](cudaStream_t s) {
    return cuda::random_weights(config, seed, options.dtype, s);
  });
}

}  // namespace spw::rt
