# libFuzzer on the JSON reader of --prompts / --replay for a bounded time (20 s in CI;
# FUZZ_SECONDS=480 at most under the test's 600 s limit; longer: run build/json_fuzz/fuzz, README).
add_test(NAME decode_json_fuzz
         COMMAND ${PROJECT_SOURCE_DIR}/tests/common/run_fuzz.sh json ${PROJECT_SOURCE_DIR} $<TARGET_FILE:spillway>
                 ${PROJECT_BINARY_DIR}/json_fuzz)
set_tests_properties(decode_json_fuzz PROPERTIES LABELS cpu TIMEOUT 600
                     PASS_REGULAR_EXPRESSION "fuzz ok" SKIP_REGULAR_EXPRESSION "SKIP:")
