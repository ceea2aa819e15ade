#include "runtime/model_loader.h"

#include "kernels/common/device.h"
#include "kernels/common/error.h"
#include "runtime/cpu_backend.h"
#include "runtime/cuda_backend.h"
#include "runtime/gguf.h"
#include "runtime/llama_weights.h"

namespace spw::rt {

std::unique_ptr<Model> load_model(const std::string& path, const LoadOptions& o) {
  SPW_CHECK_ARG(o.backend == "cpu" || o.backend == "cuda", "load_model", "backend", o.backend, "must be cpu or cuda");
  GgufFile file = GgufFile::open(path);
  if (o.backend == "cuda") {
    CudaBackendOptions cuda;
    cuda.device = o.device;
    cuda.dtype = o.dtype;
    cuda.max_tokens = o.max_tokens;
    cuda.cuda_graph_tokens = o.cuda_graph_tokens;
    cuda.batch_invariant = o.batch_invariant;
    // Shape and device first: dequantising a large model only to learn that it cannot run is slow.
    check_cuda_backend(read_llama_config(file), cuda, "load_model");
    if (auto why = gpu_unavailable_reason()) fail("load_model: the CUDA backend cannot run: {}", *why);
    return make_cuda_model(load_llama_weights(file, o.max_layers), cuda);
  }
  CpuBackendOptions cpu;
  cpu.threads = o.threads;
  cpu.max_tokens = o.max_tokens;
  return make_cpu_model(load_llama_weights(file, o.max_layers), cpu);
}

}  // namespace spw::rt
