# The CPU backend against the independent NumPy reference (needs python3 with numpy + gguf,
# installed by tools/setup_deps.sh): tiny random models of every tensor type and both
# architectures, and SmolLM2-135M when tools/fetch_model.sh has fetched it (else skipped).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  set(spw_ref ${CMAKE_CURRENT_LIST_DIR}/compare_reference.py)
  foreach(kind f32 f16 bf16 q8_0 q4_0 q4_1 q4_k q6_k f32:qwen2)
    string(REPLACE ":" "_" tname "${kind}")
    add_test(NAME runtime_numpy_reference_tiny_${tname}
             COMMAND ${Python3_EXECUTABLE} ${spw_ref} $<TARGET_FILE:spillway> tiny:${kind} 1e-5 256 72 101 108 108 111 33)
    set_tests_properties(runtime_numpy_reference_tiny_${tname} PROPERTIES LABELS cpu TIMEOUT 300
                         PASS_REGULAR_EXPRESSION "reference ok")
  endforeach()
  # SmolLM2: "<|im_start|>user\nWhat is the capital of France?" style ids (byte-level BPE).
  add_test(NAME runtime_numpy_reference_smollm2
           COMMAND ${Python3_EXECUTABLE} ${spw_ref} $<TARGET_FILE:spillway>
                   ${PROJECT_SOURCE_DIR}/models/SmolLM2-135M-Instruct.Q4_1.gguf 1e-4 1 504 3575 282 4649 314 253)
  set_tests_properties(runtime_numpy_reference_smollm2 PROPERTIES LABELS cpu TIMEOUT 600
                       PASS_REGULAR_EXPRESSION "reference ok" SKIP_REGULAR_EXPRESSION "SKIP:")
endif()

# libFuzzer on the GGUF parser for a bounded time (20 s in CI; FUZZ_SECONDS=480 at most under
# the test's 600 s limit; longer: run build/gguf_fuzz/fuzz itself, README).
add_test(NAME runtime_gguf_fuzz
         COMMAND ${PROJECT_SOURCE_DIR}/tests/common/run_fuzz.sh gguf ${PROJECT_SOURCE_DIR} $<TARGET_FILE:spillway>
                 ${PROJECT_BINARY_DIR}/gguf_fuzz)
set_tests_properties(runtime_gguf_fuzz PROPERTIES LABELS cpu TIMEOUT 600
                     PASS_REGULAR_EXPRESSION "fuzz ok" SKIP_REGULAR_EXPRESSION "SKIP:")

# libFuzzer on the tokenizer's text side likewise: encode/decode round trips of any text on the
# committed fixtures (tests/runtime/tokenizer_text_fuzz.cpp).
add_test(NAME runtime_tokenizer_fuzz
         COMMAND ${PROJECT_SOURCE_DIR}/tests/common/run_fuzz.sh tokenizer ${PROJECT_SOURCE_DIR} $<TARGET_FILE:spillway>
                 ${PROJECT_BINARY_DIR}/tokenizer_fuzz)
set_tests_properties(runtime_tokenizer_fuzz PROPERTIES LABELS cpu TIMEOUT 600
                     PASS_REGULAR_EXPRESSION "fuzz ok" SKIP_REGULAR_EXPRESSION "SKIP:")

# The thread pool's tests again, built with ThreadSanitizer: it checks the pool's memory
# orderings (a claim, the job description, the completion count) on every run instead of
# hoping a stress test observes a reordering. Left out when the compiler cannot build with it,
# or when the whole build already uses a sanitizer (they do not combine).
include(CheckCXXSourceCompiles)
set(CMAKE_REQUIRED_FLAGS -fsanitize=thread)
set(CMAKE_REQUIRED_LINK_OPTIONS -fsanitize=thread)
check_cxx_source_compiles("int main() { return 0; }" SPW_HAVE_TSAN)
unset(CMAKE_REQUIRED_FLAGS)
unset(CMAKE_REQUIRED_LINK_OPTIONS)
if(SPW_HAVE_TSAN AND NOT CMAKE_CXX_FLAGS MATCHES "-fsanitize")
  add_executable(test_thread_pool_tsan ${CMAKE_CURRENT_LIST_DIR}/test_thread_pool.cpp
                                       ${PROJECT_SOURCE_DIR}/runtime/thread_pool.cpp)
  target_include_directories(test_thread_pool_tsan PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_options(test_thread_pool_tsan PRIVATE -fsanitize=thread -g -O1)
  target_link_options(test_thread_pool_tsan PRIVATE -fsanitize=thread)
  target_link_libraries(test_thread_pool_tsan PRIVATE GTest::gtest_main Threads::Threads)
  add_test(NAME runtime_thread_pool_tsan COMMAND test_thread_pool_tsan)
  # A report fails the test (exit code 66); a kernel whose address-space layout this TSan
  # runtime cannot map skips it.
  set_tests_properties(runtime_thread_pool_tsan PROPERTIES LABELS cpu TIMEOUT 600
                       ENVIRONMENT "TSAN_OPTIONS=halt_on_error=1:exitcode=66"
                       SKIP_REGULAR_EXPRESSION "ThreadSanitizer: unexpected memory mapping")
endif()

# SPW_CPU_ISA forces a lower instruction set (README): the matrix-product tests and the CPU
# backend's again under each name, and under one no CPU has (ignored: the fastest is used);
# CpuMatmul.IsaFollowsTheEnvironment checks which set was picked.
foreach(isa generic avx2 none)
  add_test(NAME runtime_cpu_isa_${isa}_matmul COMMAND test_cpu_matmul --gtest_brief=1)
  add_test(NAME runtime_cpu_isa_${isa}_backend COMMAND test_cpu_backend --gtest_brief=1)
  set_tests_properties(runtime_cpu_isa_${isa}_matmul runtime_cpu_isa_${isa}_backend PROPERTIES
                       LABELS cpu TIMEOUT 300 ENVIRONMENT "SPW_CPU_ISA=${isa}")
endforeach()
