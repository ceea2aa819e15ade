"""tools/gpu/run_all.sh under SPW_DEADLINE, on the CPU: the script is copied into a scratch
tree next to stand-ins for nvidia-smi, cmake, ctest and python3 (on the PATH), and one
benchmark that never ends. Checks that every stage runs, that the hanging benchmark is stopped
at what the deadline leaves and reported as such, that the stages after it are skipped and said
so, that logs and results are packed anyway, that a FlashInfer bundle in .whl/ is unpacked and
said so, that goals.py gets the results folders this run wrote (not the committed ones), and
that the whole run ends within the deadline; that stages run in the order given (the autotune
stage included, unknown ones reported); and that a call carrying only the model's second half
(the machine went cold since the first) stops at once. Run by ctest as `gpu_script_deadline`."""
import os
import pathlib
import shutil
import subprocess
import tarfile
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEADLINE = 40

FAKES = {
    "nvidia-smi": 'echo "Fake GPU, 580.0, 81559 MiB"',
    "cmake": 'mkdir -p build-gpu; echo "cmake $*"',  # configure and build succeed at once
    "ctest": 'echo "ctest $*"; echo "100% tests passed, 0 tests failed out of 3"',
    # bench/<name>.py: decode_attention hangs (a SIGTERM from `timeout` ends it), copy_bandwidth
    # writes a results file (run in bench/), others return
    "compute-sanitizer": 'echo "========= ERROR SUMMARY: 0 errors"',
    "python3": 'case "$1" in decode_attention.py) exec sleep 1000;; copy_bandwidth.py) mkdir -p results/fake-gpu;'
               ' echo {} > results/fake-gpu/copy_bandwidth.json;; *) echo "python3 $*";; esac',
}

with tempfile.TemporaryDirectory() as d:
    tree = pathlib.Path(d) / "repo"
    (tree / "tools" / "gpu").mkdir(parents=True)
    shutil.copy(ROOT / "tools" / "gpu" / "run_all.sh", tree / "tools" / "gpu" / "run_all.sh")
    (tree / "bench" / "results" / "old-gpu").mkdir(parents=True)
    old_json = tree / "bench" / "results" / "old-gpu" / "flat_gemm.json"  # committed: not this run's
    old_json.write_text("{}")
    os.utime(old_json, (time.time() - 3600, time.time() - 3600))
    for name in ("harness", "plot", "results_format", "copy_bandwidth", "decode_attention", "flat_gemm",
                 "sgmv", "draft_replay"):
        (tree / "bench" / f"{name}.py").write_text("")
    (tree / ".whl").mkdir()
    (tree / ".whl" / "flashinfer-bundle.zip").write_text("")  # unpacked by the (fake) python3
    fake_bin = pathlib.Path(d) / "bin"
    fake_bin.mkdir()
    for name, body in FAKES.items():
        (fake_bin / name).write_text(f"#!/usr/bin/env bash\n{body}\n")
        (fake_bin / name).chmod(0o755)
    out = pathlib.Path(d) / "out"
    env = dict(os.environ, PATH=f"{fake_bin}:{os.environ['PATH']}", OUT=str(out), SPW_DEADLINE=str(DEADLINE))
    t0 = time.monotonic()
    p = subprocess.run(["bash", str(tree / "tools" / "gpu" / "run_all.sh"), "build", "test", "bench", "quick"],
                       env=env, capture_output=True, text=True, timeout=DEADLINE + 60)
    elapsed = time.monotonic() - t0
    summary = (out / "summary.txt").read_text()
    print(summary)
    assert elapsed <= DEADLINE, f"run took {elapsed:.1f} s, over SPW_DEADLINE={DEADLINE}"
    assert elapsed >= DEADLINE - 20, f"the hanging benchmark was stopped too early ({elapsed:.1f} s)"
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    lines = summary.splitlines()
    expect_in_order = ["Fake GPU, 580.0", "flashinfer: .whl/flashinfer-bundle.zip unpacked into /tmp/site",
                       "build: rc=0", "ctest -L gpu: rc=0 — 100% tests passed",
                       "bench copy_bandwidth: rc=0",
                       "bench decode_attention: rc=124 (stopped after",
                       f"bench flat_gemm: skipped, SPW_DEADLINE={DEADLINE}s reached",
                       "bench sgmv: skipped", "bench draft_replay: skipped",
                       "python3 bench/goals.py bench/results/fake-gpu", "done: status=1"]
    at = 0
    for want in expect_in_order:
        hits = [i for i, line in enumerate(lines) if want in line and i >= at]
        assert hits, f"'{want}' missing (or out of order) in the summary:\n{summary}"
        at = hits[0] + 1
    with tarfile.open(out / "logs.tar.gz") as t:
        names = t.getnames()
    assert "logs/bench_decode_attention.log" in names and "logs/ctest_gpu.log" in names, names
    assert (out / "results.tar.gz").exists()
    assert "old-gpu" not in summary, "goals.py was given a folder this run did not write"
    # stages run in the order given (the GPU plan puts the benchmarks before the sanitizer), and
    # autotune times flat_gemm, rebuilds, and its table comes back in results.tar.gz
    shutil.rmtree(out)
    for exe in ("test_common_gpu", "test_flat_gemm_gpu"):  # the sanitizer runs kernel families first
        (tree / "build-gpu" / "tests").mkdir(parents=True, exist_ok=True)
        (tree / "build-gpu" / "tests" / exe).write_text("#!/bin/sh\n")
        (tree / "build-gpu" / "tests" / exe).chmod(0o755)
    p = subprocess.run(["bash", str(tree / "tools" / "gpu" / "run_all.sh"), "bench", "quick", "autotune", "test",
                        "sanitize", "nonsense"], env=dict(env, SPW_BENCHES="copy_bandwidth", SPW_DEADLINE="60"),
                       capture_output=True, text=True, timeout=120)
    lines = (out / "summary.txt").read_text().splitlines()
    order = ["bench copy_bandwidth: rc=0", "autotune flat_gemm: rc=0", "rebuild with the autotuned table: rc=0",
             "ctest -L gpu: rc=0", "memcheck test_flat_gemm_gpu: rc=0 ========= ERROR SUMMARY: 0 errors",
             "racecheck test_flat_gemm_gpu: rc=0", "memcheck test_common_gpu: rc=0", "unknown stage 'nonsense'",
             "done: status=1"]
    at = [next((i for i, line in enumerate(lines) if want in line), -1) for want in order]
    assert -1 not in at and at == sorted(at), ("stages out of order or missing", order, lines)
    assert (out / "results.tar.gz").exists()
    # the call carrying model half 2 on a machine that went cold (half 1 gone) stops at once
    (tree / ".carry-model-2").mkdir()
    (tree / ".carry-model-2" / "part-b").write_text("x")
    shutil.rmtree(out)
    t0 = time.monotonic()
    p = subprocess.run(["bash", str(tree / "tools" / "gpu" / "run_all.sh"), "build", "test", "bench", "quick"],
                       env=env, capture_output=True, text=True, timeout=60)
    summary = (out / "summary.txt").read_text()
    assert p.returncode == 3 and time.monotonic() - t0 < 10, (p.returncode, summary)
    assert "half 1 is gone" in summary and "build:" not in summary, summary
    assert (out / "logs.tar.gz").exists()
print("run_all deadline ok")
