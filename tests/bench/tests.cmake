# Benchmark output code (markdown table, plot script) checked on the CPU; needs matplotlib.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  add_test(NAME bench_results_format
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_results_format.py)
  set_tests_properties(bench_results_format PROPERTIES LABELS cpu TIMEOUT 120
                       PASS_REGULAR_EXPRESSION "results format ok")
endif()
if(Python3_FOUND)
  add_test(NAME bench_harness_fake_torch
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_harness_fake_torch.py)
  set_tests_properties(bench_harness_fake_torch PROPERTIES LABELS cpu TIMEOUT 120
                       PASS_REGULAR_EXPRESSION "harness ok")
endif()
if(Python3_FOUND)
  add_test(NAME bench_cpu_scripts
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_cpu_bench_scripts.py $<TARGET_FILE:spillway>)
  set_tests_properties(bench_cpu_scripts PROPERTIES LABELS cpu TIMEOUT 600
                       PASS_REGULAR_EXPRESSION "cpu bench scripts ok")
endif()
if(Python3_FOUND)
  add_test(NAME gpu_script_deadline
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_run_all_deadline.py)
  set_tests_properties(gpu_script_deadline PROPERTIES LABELS cpu TIMEOUT 120
                       PASS_REGULAR_EXPRESSION "run_all deadline ok")
endif()
if(Python3_FOUND)
  add_test(NAME bench_goals COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_goals.py)
  set_tests_properties(bench_goals PROPERTIES LABELS cpu TIMEOUT 60 PASS_REGULAR_EXPRESSION "goals ok")
endif()
