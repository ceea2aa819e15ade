// The checked-call macros report the call, the error and the place. The CUDA runtime and cuBLAS
// name their error codes without a device, so this runs (label cpu) in any CUDA build.
#include "tests/common/helpers.h"

#if SPW_HAVE_CUDA
#include "kernels/common/cublas_check.h"
#include "kernels/common/cuda_check.h"

TEST(CudaCheck, FailureNamesCallErrorAndPlace) {
  EXPECT_NO_THROW(SPW_CUDA_CHECK(cudaSuccess));
  try {
    SPW_CUDA_CHECK(cudaErrorInvalidValue);
    FAIL() << "no exception";
  } catch (const spw::Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("CUDA error cudaErrorInvalidValue"), std::string::npos) << m;
    EXPECT_NE(m.find("`cudaErrorInvalidValue`"), std::string::npos) << m;  // the call as written
    EXPECT_NE(m.find("test_cuda_check.cpp:"), std::string::npos) << m;
  }
}

TEST(CudaCheck, CublasFailureNamesStatus) {
  EXPECT_NO_THROW(SPW_CUBLAS_CHECK(CUBLAS_STATUS_SUCCESS));
  EXPECT_THROW_MSG(SPW_CUBLAS_CHECK(CUBLAS_STATUS_NOT_INITIALIZED), "cuBLAS error CUBLAS_STATUS_NOT_INITIALIZED");
}
#else
TEST(CudaCheck, NotBuiltWithoutCuda) { GTEST_SKIP() << "built without CUDA: no CUDA/cuBLAS checks to test"; }
#endif
