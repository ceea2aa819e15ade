# build_with_clang: the CPU half of the project (kernels' host code, runtime, decoder, CLI and
# their tests; CUDA off) configured, built with clang and -Werror, and its CPU unit tests run, in
# ${PROJECT_BINARY_DIR}/clang_build (kept between runs: a rerun rebuilds what changed). GCC builds
# the main tree, so this catches code that only GCC accepts and warnings only clang gives. Skipped
# (with the reason) without clang++, and left out when the main build already uses clang.
option(SPW_CLANG_CHECK "ctest build_with_clang: build and test the CPU code with clang too" ON)
if(SPW_CLANG_CHECK AND NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  find_program(SPW_CLANGXX NAMES clang++ clang++-19 clang++-18 clang++-17 clang++-16 clang++-15 clang++-14)
  cmake_host_system_information(RESULT spw_cores QUERY NUMBER_OF_LOGICAL_CORES)
  add_test(NAME build_with_clang
           COMMAND ${CMAKE_COMMAND}
             -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
             -DWORK_DIR=${PROJECT_BINARY_DIR}/clang_build
             -DCLANGXX=${SPW_CLANGXX}
             -DJOBS=${spw_cores}
             -P ${CMAKE_CURRENT_LIST_DIR}/run_clang_build.cmake)
  set_tests_properties(build_with_clang PROPERTIES LABELS cpu TIMEOUT 1500
                       PASS_REGULAR_EXPRESSION "clang build ok" SKIP_REGULAR_EXPRESSION "SKIP:")
endif()
