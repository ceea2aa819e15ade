# bench/tree_attention.py's ctypes binding checked on the CPU against the real libspillway_c
# (plans every grid case; no launches).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND AND TARGET spillway_c)
  add_test(NAME tree_attention_bench_abi
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/bench_abi_check.py $<TARGET_FILE:spillway_c>)
  set_tests_properties(tree_attention_bench_abi PROPERTIES LABELS cpu TIMEOUT 120
                       PASS_REGULAR_EXPRESSION "tree_attention bench abi ok")
endif()
