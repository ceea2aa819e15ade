# Script behind the build_with_clang test (cmake -P): configure, build, run the CPU unit tests.
if(NOT CLANGXX OR NOT EXISTS "${CLANGXX}")
  message("SKIP: no clang++ found (tools/setup_deps.sh installs it)")
  return()
endif()
string(REGEX REPLACE "\\+\\+([^/]*)$" "\\1" clang_c "${CLANGXX}")  # clang++-14 -> clang-14
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message("${out}")
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${err}")
  endif()
endfunction()
run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR} -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_CXX_COMPILER=${CLANGXX} -DCMAKE_C_COMPILER=${clang_c} -DCMAKE_CXX_FLAGS=-Werror
    -DSPW_ENABLE_CUDA=OFF -DSPW_CLANG_CHECK=OFF)
run(${CMAKE_COMMAND} --build ${WORK_DIR} -j ${JOBS})
# the unit tests (the scripted, fuzzing, sanitizer and install tests run in the main build)
run(${CMAKE_CTEST_COMMAND} --test-dir ${WORK_DIR} -L cpu -E "fuzz|_tsan|install_consumer|numpy_reference|bench_|gpu_script"
    -j ${JOBS} --output-on-failure)
message("clang build ok")
