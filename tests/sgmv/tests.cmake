# bench/sgmv.py run on the CPU against a numpy stand-in for torch and stubbed launches (planning
# goes through the real libspillway_c): catches Python errors before a GPU run.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND AND TARGET spillway_c)
  add_test(NAME sgmv_bench_dry_run
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/bench_dry_run.py $<TARGET_FILE:spillway_c> --quick)
  set_tests_properties(sgmv_bench_dry_run PROPERTIES LABELS cpu TIMEOUT 300 SKIP_RETURN_CODE 77
                       PASS_REGULAR_EXPRESSION "sgmv bench dry run ok")
endif()
