# Benchmark scripts checked on the CPU: output code (markdown table, plot script; needs
# matplotlib), the harness against a stand-in torch, the CPU benchmarks, the GPU run script's
# deadline, and the goals report.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  # spw_bench_script_test(NAME SCRIPT PASS_REGEX TIMEOUT [ARGS...]): a cpu-labelled test that
  # runs tests/bench/SCRIPT and passes when its output matches PASS_REGEX.
  function(spw_bench_script_test name script pass_regex timeout)
    add_test(NAME ${name} COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/${script} ${ARGN})
    set_tests_properties(${name} PROPERTIES LABELS cpu TIMEOUT ${timeout} PASS_REGULAR_EXPRESSION "${pass_regex}")
  endfunction()
  spw_bench_script_test(bench_results_format test_results_format.py "results format ok" 120)
  spw_bench_script_test(bench_harness_fake_torch test_harness_fake_torch.py "harness ok" 120)
  spw_bench_script_test(bench_cpu_scripts test_cpu_bench_scripts.py "cpu bench scripts ok" 600
                        $<TARGET_FILE:spillway>)
  spw_bench_script_test(gpu_script_deadline test_run_all_deadline.py "run_all deadline ok" 120)
  spw_bench_script_test(bench_goals test_goals.py "goals ok" 60)
endif()
