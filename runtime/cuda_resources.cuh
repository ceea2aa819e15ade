// Owning wrappers of the CUDA objects the CUDA backend holds for its lifetime: a stream, an
// event, pinned host arrays, a cuBLASLt handle, CUDA graphs. Internal to runtime/*.cu.
// Destructors ignore errors (they may run while an exception unwinds); creation is checked.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "kernels/common/cublas_check.h"
#include "kernels/common/cuda_check.h"

namespace spw::rt::cuda {

/// A non-blocking stream (does not synchronise with the legacy default stream).
class Stream {
 public:
  Stream() { SPW_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  ~Stream() { if (s_) cudaStreamDestroy(s_); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }
  void sync() const { SPW_CUDA_CHECK(cudaStreamSynchronize(s_)); }

 private:
  cudaStream_t s_ = nullptr;
};

/// An event without timing (cheap to record and wait on).
class Event {
 public:
  Event() { SPW_CUDA_CHECK(cudaEventCreateWithFlags(&e_, cudaEventDisableTiming)); }
  ~Event() { if (e_) cudaEventDestroy(e_); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record(cudaStream_t s) { SPW_CUDA_CHECK(cudaEventRecord(e_, s)); }
  /// Waits on the host until the work recorded last has run (returns at once if never recorded).
  void wait() const { SPW_CUDA_CHECK(cudaEventSynchronize(e_)); }

 private:
  cudaEvent_t e_ = nullptr;
};

/// `count` elements of pinned (page-locked) host memory: the source of asynchronous copies.
template <typename T>
class PinnedArray {
 public:
  PinnedArray() = default;
  explicit PinnedArray(size_t count) : count_(count) {
    if (count_) SPW_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&p_), count_ * sizeof(T), cudaHostAllocDefault));
  }
  ~PinnedArray() { if (p_) cudaFreeHost(p_); }
  PinnedArray(PinnedArray&& o) noexcept : p_(std::exchange(o.p_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  PinnedArray& operator=(PinnedArray&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(count_, o.count_);
    return *this;
  }
  PinnedArray(const PinnedArray&) = delete;
  PinnedArray& operator=(const PinnedArray&) = delete;
  T* get() const { return p_; }
  size_t size() const { return count_; }

 private:
  T* p_ = nullptr;
  size_t count_ = 0;
};

/// A cuBLASLt handle for flat_gemm's cuBLASLt impl (flat_gemm::run never creates one).
class CublasLt {
 public:
  CublasLt() { SPW_CUBLAS_CHECK(cublasLtCreate(&h_)); }
  ~CublasLt() { if (h_) cublasLtDestroy(h_); }
  CublasLt(const CublasLt&) = delete;
  CublasLt& operator=(const CublasLt&) = delete;
  cublasLtHandle_t get() const { return h_; }

 private:
  cublasLtHandle_t h_ = nullptr;
};

/// An executable CUDA graph (empty until reset with one).
class GraphExec {
 public:
  GraphExec() = default;
  ~GraphExec() { reset(); }
  GraphExec(GraphExec&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
  GraphExec& operator=(GraphExec&& o) noexcept {
    std::swap(e_, o.e_);
    return *this;
  }
  GraphExec(const GraphExec&) = delete;
  GraphExec& operator=(const GraphExec&) = delete;
  cudaGraphExec_t get() const { return e_; }
  explicit operator bool() const { return e_ != nullptr; }
  void reset(cudaGraphExec_t e = nullptr) {
    if (e_) cudaGraphExecDestroy(e_);
    e_ = e;
  }

 private:
  cudaGraphExec_t e_ = nullptr;
};

/// A captured (not instantiated) CUDA graph.
class Graph {
 public:
  explicit Graph(cudaGraph_t g = nullptr) : g_(g) {}
  ~Graph() { if (g_) cudaGraphDestroy(g_); }
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  cudaGraph_t get() const { return g_; }

 private:
  cudaGraph_t g_ = nullptr;
};

}  // namespace spw::rt::cuda
