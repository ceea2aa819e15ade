// CapturedGraph: the CUDA-graph replay tests' common part (GPU test files only). A
// non-blocking stream of its own, a capture of what `enqueue(stream)` launches, the
// instantiated graph, and the teardown of all three, so that each test states only what it
// captures and what it checks after a replay.
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "kernels/common/cuda_check.h"

namespace spw::test {

class CapturedGraph {
 public:
  /// Captures enqueue(stream) (a callable taking the cudaStream_t) and instantiates it. A
  /// throw inside the capture ends it first, so no stream is left capturing.
  template <class Enqueue>
  explicit CapturedGraph(Enqueue&& enqueue, cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal) {
    SPW_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    try {
      SPW_CUDA_CHECK(cudaStreamBeginCapture(stream_, mode));
      try {
        std::forward<Enqueue>(enqueue)(stream_);
      } catch (...) {
        cudaGraph_t partial = nullptr;
        cudaStreamEndCapture(stream_, &partial);
        if (partial) cudaGraphDestroy(partial);
        throw;
      }
      SPW_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph_));
      SPW_CUDA_CHECK(cudaGraphInstantiate(&exec_, graph_, 0));
    } catch (...) {
      release();
      throw;
    }
  }
  ~CapturedGraph() { release(); }
  CapturedGraph(const CapturedGraph&) = delete;
  CapturedGraph& operator=(const CapturedGraph&) = delete;

  /// Launches the graph `times` times back to back and waits for it. Everything queued
  /// before on the legacy default stream (uploads, poison fills) is finished first: a
  /// non-blocking stream does not wait for it.
  void replay(int times = 1) {
    SPW_CUDA_CHECK(cudaDeviceSynchronize());
    for (int i = 0; i < times; ++i) SPW_CUDA_CHECK(cudaGraphLaunch(exec_, stream_));
    SPW_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  cudaStream_t stream() const { return stream_; }

 private:
  void release() {
    if (exec_) cudaGraphExecDestroy(exec_);
    if (graph_) cudaGraphDestroy(graph_);
    if (stream_) cudaStreamDestroy(stream_);
    exec_ = nullptr;
    graph_ = nullptr;
    stream_ = nullptr;
  }
  cudaStream_t stream_ = nullptr;
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

}  // namespace spw::test
