# The CLI's self-check runs and lists every kernel family (README's run command ends in it on a
# build without the decoder).
add_test(NAME cli_selfcheck COMMAND spillway selfcheck)
set_tests_properties(cli_selfcheck PROPERTIES LABELS cpu TIMEOUT 60
  PASS_REGULAR_EXPRESSION "decode_attention.*\n.*flat_gemm.*\n.*tree_attention.*\n.*sgmv")
add_test(NAME cli_unknown_command COMMAND spillway no-such-command)
set_tests_properties(cli_unknown_command PROPERTIES LABELS cpu TIMEOUT 60 WILL_FAIL TRUE)
# `generate --draft @FILE`: a cascade spec read from a file with comments and line breaks.
add_test(NAME cli_draft_file COMMAND ${CMAKE_CURRENT_LIST_DIR}/draft_file.sh $<TARGET_FILE:spillway>)
set_tests_properties(cli_draft_file PROPERTIES LABELS cpu TIMEOUT 120 PASS_REGULAR_EXPRESSION "(^|\n)ok")
# tools/mutation_sweep.py (does a test notice a wrong edit?) on a made-up file.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  add_test(NAME tools_mutation_sweep COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_mutation_sweep.py)
  set_tests_properties(tools_mutation_sweep PROPERTIES LABELS cpu TIMEOUT 60 PASS_REGULAR_EXPRESSION "mutation sweep ok")
endif()
