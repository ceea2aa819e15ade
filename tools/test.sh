#!/usr/bin/env bash
# Builds Spillway and runs the whole test suite (README's test command; CI runs exactly this).
# GPU tests are reported as skipped, with the reason, on a machine without a usable GPU.
#   BUILD_DIR   build folder (default: build)
#   CUDA_ARCHS  CUDA architectures to compile (default: 90 — one arch keeps the build short)
#   JOBS        parallel build jobs (default: number of cores)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/cuda/bin"
tools/setup_deps.sh
# The real-model tests (tokenizer ids, NumPy reference, fluent greedy text) use the default
# model; without network they are reported as skipped, with the reason.
tools/fetch_model.sh || echo "test.sh: could not fetch the default model: its tests will be skipped"
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90}"
cmake --build "$build" -j "${JOBS:-$(nproc)}"
cd "$build"
set +e
ctest --output-on-failure -j "${JOBS:-$(nproc)}" "$@" 2>&1 | tee ctest_output.log
rc=${PIPESTATUS[0]}
set -e
# ctest lists skipped tests without their reason: print each distinct reason once, then one
# closing line that separates skipped from passed (ctest counts a skip as passed).
if grep -q "Skipped$" Testing/Temporary/LastTest.log 2>/dev/null; then
  echo "Skip reasons:"
  grep -A1 "Skipped$" Testing/Temporary/LastTest.log | grep -v -e "Skipped$" -e "^--$" | sort | uniq -c
fi
total=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' ctest_output.log | tail -1)
failed=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of.*/\1/p' ctest_output.log | tail -1)
skipped=$(grep -c "(Skipped)" ctest_output.log || true)
if [ -n "$total" ] && [ -n "$failed" ]; then
  echo "ctest: $((total - failed - skipped)) passed, $failed failed, $skipped skipped"
fi
exit $rc
