# spw-sim (tests/sim/cuda_sim.h): the GPU tests of the kernel families, compiled as C++ and run
# on the CPU simulator, so that the kernels' logic is tested where no GPU is (CI). Built when
# the CUDA headers are there (the simulator uses their types); labelled `sim`.
# SPW_SIM_TESTS=OFF leaves them out.
option(SPW_SIM_TESTS "Build the GPU tests against the CPU simulator (tests/sim)" ON)
if(SPW_HAVE_CUDA AND SPW_SIM_TESTS AND CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(sim_dir ${CMAKE_CURRENT_LIST_DIR})
  set(sim_gen ${CMAKE_CURRENT_BINARY_DIR}/sim_sources)

  # Every sim translation unit: the simulator header first, SPW_SIM=1, no CUDA runtime.
  add_library(spillway_sim_options INTERFACE)
  target_compile_definitions(spillway_sim_options INTERFACE SPW_SIM=1 SPW_HAVE_CUDA=1)
  target_include_directories(spillway_sim_options INTERFACE ${PROJECT_SOURCE_DIR} ${CUDAToolkit_INCLUDE_DIRS})
  # -fno-strict-aliasing: CUDA code reads registers through other types (an int4 of halves)
  target_compile_options(spillway_sim_options INTERFACE -include ${sim_dir}/cuda_sim.h -fno-strict-aliasing -Wall -Wextra
                         -Wno-unused-parameter -Wno-unused-variable -Wno-unknown-pragmas -Wno-sign-compare)
  target_link_libraries(spillway_sim_options INTERFACE fmt::fmt Threads::Threads)

  # A .cu file becomes a .cpp that includes it (a source file has one language per build).
  function(spw_sim_wrap out_var)
    set(wrapped "")
    foreach(cu ${ARGN})
      file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR} ${cu})
      string(REPLACE "/" "__" flat ${rel})
      set(cpp ${sim_gen}/${flat}.cpp)
      file(CONFIGURE OUTPUT ${cpp} CONTENT "// generated: ${rel} on the CPU simulator\n#include \"${rel}\"\n")
      list(APPEND wrapped ${cpp})
    endforeach()
    set(${out_var} ${wrapped} PARENT_SCOPE)
  endfunction()

  # The kernel library again: its host sources as they are, its kernels through the wrapper,
  # the simulator core in place of libcudart.
  file(GLOB_RECURSE sim_kernel_cpp CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/kernels/*.cpp)
  list(FILTER sim_kernel_cpp EXCLUDE REGEX "_fuzz\\.cpp$")
  file(GLOB_RECURSE sim_kernel_cu CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/kernels/*.cu)
  spw_sim_wrap(sim_kernel_wrapped ${sim_kernel_cu})
  add_library(spillway_kernels_sim STATIC ${sim_kernel_cpp} ${sim_kernel_wrapped} ${sim_dir}/sim_core.cpp
              ${sim_dir}/sim_cublas.cpp)
  target_link_libraries(spillway_kernels_sim PUBLIC spillway_sim_options)

  # The runtime likewise (its CUDA backend over the simulated kernels, its CPU backend as it is).
  include(${PROJECT_SOURCE_DIR}/cmake/cpu_matmul_flags.cmake)
  file(GLOB_RECURSE sim_runtime_cpp CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/runtime/*.cpp)
  list(FILTER sim_runtime_cpp EXCLUDE REGEX "_fuzz\\.cpp$")
  file(GLOB_RECURSE sim_runtime_cu CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/runtime/*.cu)
  spw_sim_wrap(sim_runtime_wrapped ${sim_runtime_cu})
  add_library(spillway_runtime_sim STATIC ${sim_runtime_cpp} ${sim_runtime_wrapped})
  target_link_libraries(spillway_runtime_sim PUBLIC spillway_kernels_sim)
  spw_cpu_matmul_flags(${PROJECT_SOURCE_DIR}/runtime)

  # The decoder (plain C++) over the simulated runtime, for the decode loop's CUDA-target test.
  file(GLOB sim_decode_cpp CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/decode/*.cpp)
  list(FILTER sim_decode_cpp EXCLUDE REGEX "_fuzz\\.cpp$")
  add_library(spillway_decode_sim STATIC ${sim_decode_cpp})
  target_link_libraries(spillway_decode_sim PUBLIC spillway_runtime_sim)

  add_library(spillway_test_util_sim STATIC ${CMAKE_CURRENT_LIST_DIR}/../common/helpers.cpp)
  target_link_libraries(spillway_test_util_sim PUBLIC spillway_decode_sim spillway_runtime_sim spillway_kernels_sim
                        GTest::gtest)
  target_compile_definitions(spillway_test_util_sim PUBLIC SPW_TEST_DATA_DIR="${CMAKE_CURRENT_LIST_DIR}/../data"
                             SPW_SOURCE_DIR="${PROJECT_SOURCE_DIR}" SPW_BINARY_DIR="${PROJECT_BINARY_DIR}")

  # The simulator's own tests, then each kernel family's GPU tests.
  set(sim_tests ${sim_dir}/sim_selftest.cpp)  # (not test_*.cpp: that glob is the plain suite's)
  foreach(area common decode_attention tree_attention flat_gemm sgmv small_ops runtime decode)
    file(GLOB area_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/../${area}/test_*_gpu.cu
         ${CMAKE_CURRENT_LIST_DIR}/../${area}/test_*_gpu.cpp)
    spw_sim_wrap(wrapped ${area_tests})
    list(APPEND sim_tests ${wrapped})
  endforeach()
  foreach(src ${sim_tests})
    # tests/<area>/test_<name>_gpu.cu (or .cpp) runs as test_<name>_sim
    get_filename_component(name ${src} NAME_WE)
    string(REGEX REPLACE "^tests__[a-z_]+__(.*)_gpu$" "\\1_sim" name ${name})
    add_executable(${name} ${src})
    target_link_libraries(${name} PRIVATE spillway_test_util_sim GTest::gtest_main)
    gtest_discover_tests(${name} DISCOVERY_TIMEOUT 120 TEST_PREFIX "sim."
                         PROPERTIES LABELS sim TIMEOUT 900 ENVIRONMENT "SPW_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
  endforeach()

  # The tests that compare two runs bit for bit once more, with every launch running its blocks
  # in its own shuffled order and the lanes reversed (SPW_SIM_BLOCKS, SPW_SIM_REVERSE): a GPU
  # promises no block order, so the bits must not depend on it (an inter-block race, or a
  # reduction in arrival order, would differ between the two runs).
  set(order_checks
      "test_decode_attention_sim:DecodeAttentionGpu.RepeatRunsAreBitwiseIdentical:DecodeAttentionGpu.SplitAndNoSplitAgree"
      "test_flat_gemm_sim:*BitwiseDeterminismAndGraphReplay/fp16"
      "test_sgmv_sim:SgmvGpu/*.GraphReplayAndBitwiseDeterminism"
      "test_tree_attention_sim:TreeAttentionGpu.CudaGraphCaptureAndReplayMatchesDirectRun"
      "test_cuda_backend_sim:*CudaGraphsGiveTheBitsOfPlainLaunches/fp16")
  foreach(check ${order_checks})
    string(FIND "${check}" ":" colon)
    string(SUBSTRING "${check}" 0 ${colon} exe)
    math(EXPR from "${colon} + 1")
    string(SUBSTRING "${check}" ${from} -1 filter)
    add_test(NAME sim_block_order.${exe} COMMAND ${exe} --gtest_filter=${filter})
    set_tests_properties(sim_block_order.${exe} PROPERTIES LABELS sim TIMEOUT 900
                         ENVIRONMENT "SPW_SIM_BLOCKS=shuffle:1;SPW_SIM_REVERSE=1;SPW_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
                         FAIL_REGULAR_EXPRESSION "\\[  PASSED  \\] 0 tests")  # a filter that matches nothing fails
  endforeach()
endif()
