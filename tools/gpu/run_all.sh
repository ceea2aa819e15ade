#!/usr/bin/env bash
# Runs on the GPU machine, in one device call (or a few, stage by stage: build outputs in
# build-gpu/ stay on a warm machine between calls):
#   tools/gpu/run_all.sh [build] [test] [sanitize] [bench] [quick]    (default: all stages)
# build     configure + build with nvcc for sm_90 (carried fmt + GoogleTest from .carry/)
# test      the whole `gpu`-labelled ctest suite (and the cpu one, quickly)
# sanitize  the gpu test executables under compute-sanitizer memcheck, and racecheck for the
#           shared-memory kernels
# bench     every bench/*.py benchmark (--quick with `quick`), results under bench/results/
# Logs and results go to $OUT (default /tmp/spillway-out) as a few files: summary.txt,
# logs.tar.gz, results.tar.gz (the device call returns at most 8 files).
# Environment: SPW_BENCHES="decode_attention flat_gemm ..." runs only those benchmarks;
# SPW_TEST_FILTER=regex runs only the matching gpu tests (ctest -R); SPW_MEMCHECK_FILTER /
# SPW_RACECHECK_FILTER (gtest filters) and SPW_MEMCHECK_TIMEOUT / SPW_RACECHECK_TIMEOUT (300 s per
# binary) bound the sanitizer stage; SPW_BENCH_TIMEOUT (900 s)
# per benchmark; SPW_E2E_FULL=1 the whole e2e prompt set.
# With a short device budget (15 minutes in all): `build` first, then `test` (the failures say
# what to fix), then `bench quick` with SPW_BENCHES set to the families being worked on;
# `sanitize` is the slowest stage (memcheck of every gpu test binary).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/spillway-out}
mkdir -p "$OUT/logs"
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(build test sanitize bench)
has() { local s; for s in "${stages[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
summary="$OUT/summary.txt"
note() { echo "$*" | tee -a "$summary"; }
status=0

if [ -f .whl/.installed ] || ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export SPW_COMMIT=$(cat .carry/commit.txt 2>/dev/null | tr -d '\n' || echo unknown)
# The default model travels in two halves (a device call carries at most 64 MiB; see
# tools/gpu/prepare_carry.sh): join them once both have arrived.
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$model" ] && ls .carry-model-1/part-* .carry-model-2/part-* >/dev/null 2>&1; then
  mkdir -p models && cat .carry-model-1/part-* .carry-model-2/part-* > "$model.tmp" && mv "$model.tmp" "$model"
  for b in .carry-model-*/*.bigram; do [ -f "$b" ] && cp "$b" models/; done
fi
note "spillway GPU run, commit $SPW_COMMIT, $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$summary"
if [ -f "$model" ]; then note "model: $model ($(du -h "$model" | cut -f1))"; else note "model: $model absent (its tests skip)"; fi

if has build; then
  t0=$(date +%s)
  # (the CPU-simulator copies of the GPU tests are left out: the real GPU runs them)
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DSPW_SIM_TESTS=OFF \
    -DSPW_FMT_INCLUDE_DIR="$PWD/.carry/fmt" -DSPW_GTEST_SOURCE_DIR="$PWD/.carry/googletest" \
    > "$OUT/logs/configure.log" 2>&1 \
    && cmake --build build-gpu -j "$(nproc)" > "$OUT/logs/build.log" 2>&1
  rc=$?; note "build: rc=$rc ($(( $(date +%s) - t0 ))s)"; [ $rc -ne 0 ] && { tail -30 "$OUT/logs/build.log"; status=1; }
fi

if has test; then
  (cd build-gpu && ctest -L gpu ${SPW_TEST_FILTER:+-R "$SPW_TEST_FILTER"} --output-on-failure --timeout 600) \
    > "$OUT/logs/ctest_gpu.log" 2>&1
  rc=$?; note "ctest -L gpu: rc=$rc — $(grep -E 'tests passed|tests failed' "$OUT/logs/ctest_gpu.log" | tail -1)"
  grep -E "\*\*\*(Failed|Exception|Timeout)|^[[:space:]]+[0-9]+ - " "$OUT/logs/ctest_gpu.log" | grep -v "(Skipped)" | head -30 | tee -a "$summary"
  [ $rc -ne 0 ] && status=1
fi

if has sanitize; then
  for exe in build-gpu/tests/test_*_gpu; do
    [ -x "$exe" ] || continue
    name=$(basename "$exe")
    # bounded per binary (memcheck slows kernels 10-100x); rc 124 = timed out, inconclusive
    timeout "${SPW_MEMCHECK_TIMEOUT:-300}" compute-sanitizer --tool memcheck --error-exitcode 1 \
      "$exe" --gtest_filter="${SPW_MEMCHECK_FILTER:-*}" > "$OUT/logs/memcheck_$name.log" 2>&1
    rc=$?
    if [ $rc -eq 124 ]; then note "memcheck $name: timed out after ${SPW_MEMCHECK_TIMEOUT:-300}s (inconclusive)"
    else note "memcheck $name: rc=$rc $(grep -E 'ERROR SUMMARY' "$OUT/logs/memcheck_$name.log" | tail -1)"
      [ $rc -ne 0 ] && status=1
    fi
    # racecheck on the shared-memory kernels (attention, GEMM, SGMV), bounded in time
    case $name in
      *attention*|*gemm*|*sgmv*)
        timeout "${SPW_RACECHECK_TIMEOUT:-300}" compute-sanitizer --tool racecheck --error-exitcode 1 \
          "$exe" --gtest_filter="${SPW_RACECHECK_FILTER:-*}" \
          > "$OUT/logs/racecheck_$name.log" 2>&1
        rc=$?; note "racecheck $name: rc=$rc $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' "$OUT/logs/racecheck_$name.log" | tail -1)"
        [ $rc -ne 0 ] && status=1;;
    esac
  done
fi

if has bench; then
  qflag=""; has quick && qflag="--quick"
  benches=(copy_bandwidth)
  for b in bench/*.py; do
    name=$(basename "$b" .py)
    case $name in harness|plot|results_format|copy_bandwidth|draft_replay) continue;; esac
    benches+=("$name")
  done
  benches+=(draft_replay)  # last: its estimates use runtime_step's cost curve of this GPU
  if [ -n "${SPW_BENCHES:-}" ]; then read -r -a benches <<< "$SPW_BENCHES"; fi
  for name in "${benches[@]}"; do
    extra=()
    case $name in
      # the decode demo's benchmark on the CUDA backend; 6 prompts unless SPW_E2E_FULL=1
      e2e_decode) extra=(--backend cuda); [ "${SPW_E2E_FULL:-0}" = 1 ] || extra+=(--quick);;
      # drafting configurations replayed over greedy outputs recorded on the CUDA backend
      draft_replay) extra=(--backend cuda --costs auto);;
    esac
    (cd bench && PYTHONUNBUFFERED=1 timeout "${SPW_BENCH_TIMEOUT:-900}" python3 "$name.py" $qflag "${extra[@]}") \
      > "$OUT/logs/bench_$name.log" 2>&1
    rc=$?; note "bench $name: rc=$rc"; [ $rc -ne 0 ] && { tail -5 "$OUT/logs/bench_$name.log"; status=1; }
  done
  for j in bench/results/*/*.json; do python3 bench/plot.py "$j" --logx >/dev/null 2>&1 || true; done
  tar czf "$OUT/results.tar.gz" bench/results
fi

tar czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$OUT/logs"
note "done: status=$status"
exit $status
