#!/usr/bin/env bash
# Runs on the GPU machine, in one device call (or a few, stage by stage: build outputs in
# build-gpu/ stay on a warm machine between calls):
#   tools/gpu/run_all.sh [build] [test] [sanitize] [autotune] [bench] [quick]    (default: build
#   test sanitize bench)
# build     configure + build with nvcc for sm_90 (carried fmt + GoogleTest from .carry/)
# autotune  bench/flat_gemm.py --autotune --write-table (every flat_gemm candidate timed per shape,
#           the winners written to kernels/flat_gemm/dispatch_table.h and, to come back, to
#           bench/results/<device>/flat_gemm_dispatch_table.h), then the C library rebuilt
#           with that table, so the benchmarks after it use it (#5: commit that file as
#           kernels/flat_gemm/dispatch_table.h)
# test      the whole `gpu`-labelled ctest suite (and the cpu one, quickly)
# sanitize  the gpu test executables under compute-sanitizer memcheck, and racecheck for the
#           shared-memory kernels
# bench     every bench/*.py benchmark (--quick with `quick`), results under bench/results/
# Logs and results go to $OUT (default /tmp/spillway-out) as a few files: summary.txt,
# logs.tar.gz, results.tar.gz (the device call returns at most 8 files).
# Environment: SPW_BENCHES="decode_attention flat_gemm ..." runs only those benchmarks;
# SPW_TEST_FILTER=regex runs only the matching gpu tests (ctest -R); SPW_MEMCHECK_FILTER /
# SPW_RACECHECK_FILTER (gtest filters) and SPW_MEMCHECK_TIMEOUT / SPW_RACECHECK_TIMEOUT (300 s per
# binary) bound the sanitizer stage; SPW_TEST_TIMEOUT (120 s) per gpu test; SPW_BENCH_TIMEOUT
# (900 s) per benchmark (under SPW_DEADLINE also at most twice its share of the time left, at
# least 60 s); SPW_E2E_FULL=1 the whole e2e prompt set.
# SPW_DEADLINE=S: the whole run ends within S seconds of its start (give a device call's
# timeout_s minus ~40 s): every step's time limit is cut to what is left, a step that would get
# under 20 s is skipped (and said so), and the logs and results are packed whatever happened;
# a benchmark stopped by its limit still writes the rows it measured, marked incomplete
# (bench/harness.py). SPW_TEST_JOBS (4): gpu tests run at once (one GPU, 16 cores).
# Stages run in the order given, so put first what matters most. With a short device budget
# (15 minutes in all, a machine kept warm for only 30 s between calls) README.md's "Running on
# a GPU" gives the two calls to make.
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
t_start=$(date +%s)
# results written by this run are the ones newer than this file (summary.txt changes all along)
started=$(mktemp)
# limit WANTED: the seconds a step may take, WANTED cut to what SPW_DEADLINE leaves (10 s
# kept for packing); prints 0 when under 20 s are left, and the step is then skipped.
limit() {
  local want=$1 left
  [ -z "${SPW_DEADLINE:-}" ] && { echo "$want"; return; }
  left=$(( SPW_DEADLINE - ($(date +%s) - t_start) - 10 ))
  [ "$left" -lt 20 ] && { echo 0; return; }
  [ "$left" -lt "$want" ] && want=$left
  echo "$want"
}
# bounded SECONDS CMD...: CMD under `timeout` (SIGTERM, then SIGKILL 10 s later); 124 = timed out
bounded() { local s=$1; shift; timeout -k 10 "$s" "$@"; }
skipped() { note "$1: skipped, SPW_DEADLINE=${SPW_DEADLINE}s reached"; }

if [ -f .whl/.installed ] || ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# FlashInfer with its benchmark kernels compiled ahead of time (tools/gpu/flashinfer_bundle.sh)
fi_bundle=.whl/flashinfer-bundle.zip
if [ -f "$fi_bundle" ]; then
  # (FlashInfer still renders its module sources before it finds the AOT build: a writable
  # workspace for them, wherever HOME is)
  export FLASHINFER_WORKSPACE_BASE=${FLASHINFER_WORKSPACE_BASE:-/tmp/flashinfer-ws}
  mkdir -p /tmp/site && python3 -m zipfile -e "$fi_bundle" /tmp/site \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} \
    && fi_note="flashinfer: $fi_bundle unpacked into /tmp/site" || fi_note="flashinfer: unpacking $fi_bundle failed"
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
[ -n "${fi_note:-}" ] && note "$fi_note"
if [ -f "$model" ]; then note "model: $model ($(du -h "$model" | cut -f1))"
elif [ -d .carry-model-2 ] && [ ! -d .carry-model-1 ]; then
  # half 1 came with an earlier call, on a machine given back since (warm only 30 s)
  # (the call that carries half 2 is there for the model alone: stop before spending more)
  note "model: half 1 is gone (the machine went cold between calls): stopping; carry both halves to one warm machine"
  tar czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$OUT/logs"
  exit 3
else note "model: $model absent (its tests skip)"; fi

stage_build() {
  t0=$(date +%s)
  s=$(limit 1800)
  if [ "$s" -eq 0 ]; then skipped build; else
    # (the CPU-simulator copies of the GPU tests are left out: the real GPU runs them)
    cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DSPW_SIM_TESTS=OFF -DSPW_CLANG_CHECK=OFF \
      -DSPW_FMT_INCLUDE_DIR="$PWD/.carry/fmt" -DSPW_GTEST_SOURCE_DIR="$PWD/.carry/googletest" \
      > "$OUT/logs/configure.log" 2>&1 \
      && bounded "$s" cmake --build build-gpu -j "$(nproc)" -- -k 0 > "$OUT/logs/build.log" 2>&1
    # (-k 0: ninja builds every target it can, so one file that fails to compile on this
    # toolkit costs its own tests, not the library and every benchmark)
    rc=$?; note "build: rc=$rc ($(( $(date +%s) - t0 ))s)"
    if [ $rc -ne 0 ]; then
      grep -E "FAILED:|error" "$OUT/logs/build.log" | head -20 | tee -a "$summary"
      status=1
    fi
  fi
}

stage_test() {
  s=$(limit 1800)
  if [ "$s" -eq 0 ]; then skipped "ctest -L gpu"; else
    # ctest --stop-time would need a clock time; its own --timeout bounds each test
    (cd build-gpu && bounded "$s" ctest -L gpu ${SPW_TEST_FILTER:+-R "$SPW_TEST_FILTER"} -j "${SPW_TEST_JOBS:-4}" \
      --output-on-failure --timeout "$(( s < ${SPW_TEST_TIMEOUT:-120} ? s : ${SPW_TEST_TIMEOUT:-120} ))") \
      > "$OUT/logs/ctest_gpu.log" 2>&1
    rc=$?; note "ctest -L gpu: rc=$rc$([ $rc -eq 124 ] && echo ' (time limit: unfinished)') — $(grep -E 'tests passed|tests failed' "$OUT/logs/ctest_gpu.log" | tail -1)"
    grep -E "\*\*\*(Failed|Exception|Timeout)|^[[:space:]]+[0-9]+ - " "$OUT/logs/ctest_gpu.log" | grep -v "(Skipped)" | head -30 | tee -a "$summary"
    [ $rc -ne 0 ] && status=1
  fi
}

# fair WANT N FLOOR: WANT seconds, cut under SPW_DEADLINE to twice the share of the time left
# that one of N remaining steps gets (at least FLOOR), then to what is left (see limit).
fair() {
  local want=$1 n=$2 floor=$3 share
  if [ -n "${SPW_DEADLINE:-}" ]; then
    share=$(( 2 * (SPW_DEADLINE - ($(date +%s) - t_start) - 10) / (n > 0 ? n : 1) ))
    [ "$share" -lt "$floor" ] && share=$floor
    [ "$share" -lt "$want" ] && want=$share
  fi
  limit "$want"
}

# sanitize_run TOOL EXE FILTER SECONDS: one compute-sanitizer run, its verdict in the summary.
# A run stopped by its limit is inconclusive, but the errors it printed before count.
sanitize_run() {
  local tool=$1 exe=$2 filter=$3 s=$4 name log rc errors
  name=$(basename "$exe"); log="$OUT/logs/${tool}_$name.log"
  bounded "$s" compute-sanitizer --tool "$tool" --error-exitcode 1 "$exe" --gtest_filter="$filter" > "$log" 2>&1
  rc=$?
  errors=$(grep -cE "^========= (Invalid|Race|Error|Uninitialized|Program hit|Barrier|Out-of-range|Misaligned)" "$log")
  if [ $rc -eq 124 ]; then
    note "$tool $name: timed out after ${s}s (inconclusive; $errors error reports before the stop)"
    [ "$errors" -gt 0 ] && status=1
  else
    note "$tool $name: rc=$rc $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' "$log" | tail -1)"
    [ $rc -ne 0 ] && status=1
  fi
}

stage_sanitize() {
  # The kernel families' tests first (the model tests run the same kernels again, slower), each
  # run at most twice its share of the time left, so every family gets memcheck (and the
  # shared-memory ones racecheck) within the deadline, if only on their first tests.
  local exes=() e left=0
  for e in decode_attention flat_gemm tree_attention sgmv small_ops common cuda_backend decode_cuda cuda_models; do
    [ -x "build-gpu/tests/test_${e}_gpu" ] && exes+=("build-gpu/tests/test_${e}_gpu")
  done
  for e in build-gpu/tests/test_*_gpu; do  # any other gpu test binary, last
    [ -x "$e" ] || continue
    case " ${exes[*]} " in *" $e "*) ;; *) exes+=("$e");; esac
  done
  for e in "${exes[@]}"; do
    left=$((left + 1))
    case $e in *attention*|*gemm*|*sgmv*) left=$((left + 1));; esac
  done
  for exe in "${exes[@]}"; do
    name=$(basename "$exe")
    # memcheck slows kernels 10-100x: bounded per binary (SPW_MEMCHECK_TIMEOUT, 300 s)
    s=$(fair "${SPW_MEMCHECK_TIMEOUT:-300}" "$left" 30); left=$((left - 1))
    if [ "$s" -eq 0 ]; then skipped "memcheck $name"; else sanitize_run memcheck "$exe" "${SPW_MEMCHECK_FILTER:-*}" "$s"; fi
    # racecheck on the shared-memory kernels (attention, GEMM, SGMV)
    case $name in
      *attention*|*gemm*|*sgmv*)
        s=$(fair "${SPW_RACECHECK_TIMEOUT:-300}" "$left" 30); left=$((left - 1))
        if [ "$s" -eq 0 ]; then skipped "racecheck $name"
        else sanitize_run racecheck "$exe" "${SPW_RACECHECK_FILTER:-*}" "$s"; fi;;
    esac
  done
}

stage_autotune() {
  qflag=""; has quick && qflag="--quick"
  s=$(limit "${SPW_BENCH_TIMEOUT:-900}")
  if [ "$s" -eq 0 ]; then skipped "autotune flat_gemm"; else
    t0=$(date +%s)
    (cd bench && PYTHONUNBUFFERED=1 bounded "$s" python3 flat_gemm.py $qflag --autotune --write-table) \
      > "$OUT/logs/autotune_flat_gemm.log" 2>&1
    rc=$?; note "autotune flat_gemm: rc=$rc ($(( $(date +%s) - t0 ))s)"
    if [ $rc -ne 0 ]; then tail -5 "$OUT/logs/autotune_flat_gemm.log"; status=1
    else
      s=$(limit 600)
      if [ "$s" -eq 0 ]; then skipped "rebuild with the autotuned table"; else
        # (the C library only: the benchmarks load it; the tests keep the table they were built with)
        bounded "$s" cmake --build build-gpu -j "$(nproc)" --target spillway_c >> "$OUT/logs/build.log" 2>&1
        rc=$?; note "rebuild with the autotuned table: rc=$rc"; [ $rc -ne 0 ] && status=1
      fi
    fi
  fi
}

stage_bench() {
  qflag=""; has quick && qflag="--quick"
  benches=(copy_bandwidth)
  for b in bench/*.py; do
    name=$(basename "$b" .py)
    case $name in harness|plot|results_format|copy_bandwidth|draft_replay) continue;; esac
    benches+=("$name")
  done
  benches+=(draft_replay)  # last: its estimates use runtime_step's cost curve of this GPU
  if [ -n "${SPW_BENCHES:-}" ]; then read -r -a benches <<< "$SPW_BENCHES"; fi
  local left=${#benches[@]}
  for name in "${benches[@]}"; do
    extra=()
    case $name in
      # the decode demo's benchmark on the CUDA backend; 6 prompts unless SPW_E2E_FULL=1
      # (batch-invariant target: greedy output identical to AR by construction, the issue's goal)
      e2e_decode) extra=(--backend cuda --batch-invariant); [ "${SPW_E2E_FULL:-0}" = 1 ] || extra+=(--quick);;
      # drafting configurations replayed over greedy outputs recorded on the CUDA backend
      draft_replay) extra=(--backend cuda --costs auto);;
    esac
    # Under SPW_DEADLINE a benchmark gets at most twice its fair share of what is left (at
    # least 60 s), so one slow benchmark cannot starve those after it (each writes the rows it
    # measured when stopped).
    s=$(fair "${SPW_BENCH_TIMEOUT:-900}" "$left" 60); left=$((left - 1))
    if [ "$s" -eq 0 ]; then skipped "bench $name"; continue; fi
    (cd bench && PYTHONUNBUFFERED=1 bounded "$s" python3 "$name.py" $qflag "${extra[@]}") \
      > "$OUT/logs/bench_$name.log" 2>&1
    rc=$?; note "bench $name: rc=$rc$([ $rc -eq 124 ] && echo " (stopped after ${s}s: rows so far written, marked incomplete)")"
    [ $rc -ne 0 ] && { tail -5 "$OUT/logs/bench_$name.log"; status=1; }
  done
  # plots of this run's results only (the committed ones are older than $started)
  find bench/results -name "*.json" -newer "$started" | while read -r j; do
    s=$(limit 60); [ "$s" -eq 0 ] && break
    bounded "$s" python3 bench/plot.py "$j" --logx >/dev/null 2>&1 || true
  done
  # the issues' goals against this run's results (PASS / FAIL / n.a. per goal)
  folders=$(find bench/results -name "*.json" -newer "$started" -printf '%h\n' | sort -u)
  [ -n "$folders" ] && python3 bench/goals.py $folders 2>&1 | tee -a "$summary"
}

# The stages, in the order given (`quick` only modifies bench and autotune).
for st in "${stages[@]}"; do
  case $st in
    build|test|sanitize|autotune|bench) "stage_$st";;
    quick) ;;
    *) note "unknown stage '$st' (build, test, sanitize, autotune, bench, quick)"; status=1;;
  esac
done

if has bench || has autotune; then tar czf "$OUT/results.tar.gz" bench/results; fi
tar czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$OUT/logs"
note "done: status=$status"
exit $status
