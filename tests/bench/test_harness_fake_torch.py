"""Runs bench/harness.py and bench/copy_bandwidth.py end to end on the CPU against a stand-in
`torch` module whose CUDA events report a fixed time per call, so the harness's bookkeeping
(median, GB/s, % of copy, rotation count, filter, skip, JSON + markdown output) is checked
without a GPU. Run by ctest as `bench_harness_fake_torch`."""
import json
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
import types

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

US_PER_CALL = 100.0  # every timed region "takes" 100 us
SPINS = []  # cycles of every torch.cuda._sleep


class _Event:
    clock = 0.0

    def __init__(self, enable_timing=False):
        self.t = None

    def record(self):
        _Event.clock += US_PER_CALL / 1000.0  # ms
        self.t = _Event.clock

    def elapsed_time(self, end):
        return US_PER_CALL / 1000.0


class _Tensor:
    def __init__(self, n):
        self.n = n

    def random_(self):
        return self

    def copy_(self, other):
        return self


class _Props:
    name = "Fake GPU 80GB"
    multi_processor_count = 132
    L2_cache_size = 50 << 20


cuda = types.SimpleNamespace(
    is_available=lambda: True, get_device_properties=lambda i: _Props(), synchronize=lambda: None,
    Event=_Event, _sleep=lambda cycles: SPINS.append(cycles),
    current_stream=lambda: types.SimpleNamespace(cuda_stream=0))
fake = types.ModuleType("torch")
fake.cuda = cuda
fake.uint8 = "uint8"
fake.empty = lambda n, dtype=None, device=None: _Tensor(n)
fake.empty_like = lambda t: _Tensor(t.n)
sys.modules["torch"] = fake

import harness  # noqa: E402

with tempfile.TemporaryDirectory() as d:
    b = harness.Bench("demo", ["--out", d, "--reps", "20", "--filter", "keep"])
    # copy bandwidth: 1 GiB read + written in 100 us
    assert abs(b.copy_gbs - 2 * (1 << 30) / 100e-6 / 1e9) < 1e-6, b.copy_gbs
    assert b.rotation_count(1 << 20) == 64 and b.rotation_count(1 << 30) == 1
    assert b.rotation_count(10 << 20) == 15  # 3 x 50 MiB / 10 MiB
    assert not b.case("dropped_case", {"x": 1})
    assert b.case("keep_case", {"x": 2})
    calls = []
    us = b.time("spillway", lambda i: calls.append(i), bytes=1e6, flops=2e9)
    assert us == US_PER_CALL and calls == list(range(5 + 20)), calls
    b.time("torch_sdpa", lambda i: None, bytes=1e6)
    b.skip("flashinfer", "not installed")
    path = b.write()
    doc = json.loads(path.read_text())
    assert path.parent.name == "fake-gpu-80gb"
    assert doc["name"] == "demo" and doc["device"] == "Fake GPU 80GB" and len(doc["rows"]) == 2
    row = doc["rows"][0]
    assert row["median_us"] == 100.0 and row["gbs"] == 10.0 and row["tflops"] == 20.0, row
    assert doc["skipped"][0]["reason"] == "not installed"
    md = (path.parent / "demo.md").read_text()
    assert "| keep_case | torch_sdpa | 100.00 | 10.0 |" in md and "not installed" in md, md
    # the spin before each timed call covers twice the host time of a slow-to-launch fn
    SPINS.clear()
    harness.median_time_us(lambda i: time.sleep(0.002), warmup=2, reps=20)
    assert len(SPINS) == 20 and min(SPINS) >= 2 * 0.002 * 2e9, SPINS[:3]
    SPINS.clear()
    harness.median_time_us(lambda i: None, warmup=2, reps=20)
    assert SPINS == [40_000] * 20, SPINS[:3]
    # a case that raises is recorded, the run goes on, and write() exits non-zero after writing
    b2 = harness.Bench("demo_fail", ["--out", d, "--reps", "20"])
    b2.case("bad_case", {})
    try:
        raise RuntimeError("spillway differs from torch")
    except RuntimeError as e:
        b2.fail(e)
    def raises(x):
        raise ValueError(f"bad input {x}")
    b2.attempt(b2.case, "bad_case2", {})
    b2.attempt(raises, 7)  # recorded by attempt() like fail() above
    b2.case("good_case", {})
    b2.time("spillway", lambda i: None, bytes=1e6)
    try:
        b2.write()
        raise AssertionError("a failed case did not make write() exit non-zero")
    except SystemExit as e:
        assert "2 case(s) failed" in str(e), e
    doc = json.loads((path.parent / "demo_fail.json").read_text())
    assert len(doc["rows"]) == 1 and doc["skipped"][0]["case"] == "bad_case", doc
    assert doc["skipped"][1]["case"] == "bad_case2" and "bad input 7" in doc["skipped"][1]["reason"], doc
    assert "spillway differs from torch" in doc["skipped"][0]["reason"], doc
    # a time limit's SIGTERM mid-grid: the rows so far are written, marked incomplete, exit 124
    class HardExit(Exception):
        pass

    def hard_exit(code):
        raise HardExit(code)

    harness._hard_exit = hard_exit
    b3 = harness.Bench("demo_cut", ["--out", d, "--reps", "20"])
    b3.case("first_case", {})
    b3.time("spillway", lambda i: None, bytes=1e6)
    b3.case("second_case", {})
    try:
        signal.raise_signal(signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the benchmark")
    except HardExit as e:
        assert e.args == (124,), e.args
    doc = json.loads((path.parent / "demo_cut.json").read_text())
    assert len(doc["rows"]) == 1 and "SIGTERM" in doc["incomplete"] and "after 1 rows" in doc["incomplete"], doc
    md = (path.parent / "demo_cut.md").read_text()
    assert "**Incomplete**: stopped by SIGTERM" in md and "| first_case | spillway |" in md, md
    b4 = harness.Bench("demo_cut_fail", ["--out", d, "--reps", "20"])  # a failed case as well
    b4.case("bad", {})
    b4.fail(RuntimeError("wrong"))
    try:
        signal.raise_signal(signal.SIGTERM)
    except HardExit as e:
        assert e.args == (124,), e.args
    doc = json.loads((path.parent / "demo_cut_fail.json").read_text())
    assert doc["incomplete"] and doc["skipped"][0]["case"] == "bad", doc
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        harness.Bench("demo", ["--reps", "5"])
        raise AssertionError("--reps 5 accepted")
    except SystemExit as e:
        assert ">= 20" in str(e)
    # the copy benchmark script itself runs through the harness
    sys.argv = ["copy_bandwidth.py", "--out", d, "--quick"]
    import copy_bandwidth  # noqa: E402
    copy_bandwidth.main()
    doc = json.loads((path.parent / "copy_bandwidth.json").read_text())
    assert [r["case"] for r in doc["rows"]] == ["copy_64mib", "copy_256mib", "copy_1024mib"], doc["rows"]
# Without PyTorch, every kernel benchmark says what it needs instead of a traceback (torch is
# blocked in a child process, so this holds whether or not this machine has it).
for script in ("copy_bandwidth", "decode_attention", "flat_gemm", "sgmv", "tree_attention"):
    child = ("import runpy, sys; sys.modules['torch'] = None; sys.path.insert(0, %r); "
             "sys.argv = [%r, '--help']; runpy.run_path(%r, run_name='__main__')"
             % (str(ROOT / "bench"), script + ".py", str(ROOT / "bench" / (script + ".py"))))
    run = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    assert run.returncode == 1 and f"{script}.py: needs PyTorch with a CUDA GPU" in run.stderr \
        and "Traceback" not in run.stderr, (script, run.returncode, run.stderr[-500:])
print("harness ok")
