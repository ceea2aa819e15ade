# The CLI's self-check runs and lists every kernel family (README's run command ends in it on a
# build without the decoder).
add_test(NAME cli_selfcheck COMMAND spillway selfcheck)
set_tests_properties(cli_selfcheck PROPERTIES LABELS cpu TIMEOUT 60
  PASS_REGULAR_EXPRESSION "decode_attention.*\n.*flat_gemm.*\n.*tree_attention.*\n.*sgmv")
add_test(NAME cli_unknown_command COMMAND spillway no-such-command)
set_tests_properties(cli_unknown_command PROPERTIES LABELS cpu TIMEOUT 60 WILL_FAIL TRUE)
