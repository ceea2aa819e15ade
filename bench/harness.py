"""Spillway benchmark harness (BENCH_FORMAT.md), shared by every bench/<name>.py.

Each implementation of a case (ours through the C ABI of libspillway_c.so, baselines through
PyTorch / FlashInfer / cuBLAS) is timed in the same process:
  * warm-up calls, then >= 20 timed repetitions, each bracketed by CUDA events; the median
    is reported;
  * before each timed call a short GPU spin (torch.cuda._sleep) is queued, so the host
    launch latency of Python/ctypes is hidden and the events measure device time only;
  * inputs rotate over several copies (rotation_count) whose total size exceeds the L2
    cache several times, so a repetition never finds its inputs in L2;
  * a large device-to-device copy is measured in the same run (bytes read + written) and
    every row is also reported as a fraction of that bandwidth.

Usage (see bench/copy_bandwidth.py for the smallest example):
    b = Bench("decode_attention")
    b.case("b1_kv4096_...", {"batch": 1, ...})
    b.time("spillway", lambda i: launch(i), bytes=..., flops=...)
    b.skip("flashinfer", "reason")
    b.write()
"""
from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import math
import os
import pathlib
import signal
import statistics
import sys
import time
import traceback

try:
    import torch
except ImportError:  # the kernel benchmarks time against PyTorch baselines on a CUDA device
    sys.exit(f"{pathlib.Path(sys.argv[0]).name}: needs PyTorch with a CUDA GPU (its baselines and timing). "
             "Run it on the GPU machine (README: Running on a GPU), or install torch first.")

from results_format import device_slug, git_commit, gpu_name_driver, markdown_table  # noqa: F401 (git_commit: harness.git_commit)

ROOT = pathlib.Path(__file__).resolve().parent.parent
# How a benchmark stopped by a time limit ends, after writing what it has (a test replaces it).
_hard_exit = os._exit


# ---------------------------------------------------------------- the C ABI library
def load_spillway(path: str | None = None) -> ctypes.CDLL:
    """Loads libspillway_c.so: $SPW_LIB, else build-gpu/ or build/ under the repo root."""
    candidates = [path, os.environ.get("SPW_LIB"),
                  ROOT / "build-gpu" / "libspillway_c.so", ROOT / "build" / "libspillway_c.so"]
    for c in candidates:
        if c and pathlib.Path(c).exists():
            lib = ctypes.CDLL(str(c))
            lib.spw_last_error.restype = ctypes.c_char_p
            lib.spw_version.restype = ctypes.c_char_p
            return lib
    raise FileNotFoundError("libspillway_c.so not found: build with CUDA (tools/gpu/run_all.sh build) "
                            "or set SPW_LIB")


def check(lib: ctypes.CDLL, status: int, what: str) -> None:
    """Raises RuntimeError with spw_last_error() when a spw_* call returned non-zero."""
    if status != 0:
        raise RuntimeError(f"{what} failed (status {status}): {lib.spw_last_error().decode()}")


def stream_ptr() -> int:
    """The current torch CUDA stream as an integer handle for spw_* run functions."""
    return torch.cuda.current_stream().cuda_stream


def ptr(t: torch.Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(t.data_ptr())


# ---------------------------------------------------------------- device facts
def driver_version() -> str:
    """The NVIDIA driver version (NVML when importable, else nvidia-smi), or 'unknown'."""
    try:
        import pynvml  # nvidia-ml-py
        pynvml.nvmlInit()
        v = pynvml.nvmlSystemGetDriverVersion()
        return v.decode() if isinstance(v, bytes) else v
    except Exception:  # noqa: BLE001 - best effort; nvidia-smi next
        return gpu_name_driver()[1]


# ---------------------------------------------------------------- timing
def median_time_us(fn, warmup: int, reps: int, spin_cycles: int = 40_000) -> float:
    """Median device time of fn(i) over `reps` calls (i counts on across warm-up and reps).
    The spin before each call lasts at least twice fn's host time (fastest warm-up call, at
    2 cycles per ns): a baseline of several launches (or a loop of T calls) would otherwise
    leave the GPU idle between its kernels and the events would time the host."""
    host_s = []
    for i in range(warmup):
        t0 = time.perf_counter()
        fn(i)
        host_s.append(time.perf_counter() - t0)
    torch.cuda.synchronize()
    if host_s:
        spin_cycles = max(spin_cycles, min(int(2 * min(host_s) * 2e9), 20_000_000))  # <= ~10 ms
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for r in range(reps):
        torch.cuda._sleep(spin_cycles)  # keeps the GPU busy while the host enqueues the call
        starts[r].record()
        fn(warmup + r)
        ends[r].record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) * 1000.0 for s, e in zip(starts, ends))


def attention_tolerance(want) -> float:
    """Max |error| accepted for an attention output against its reference `want`: relative to
    the output's size, since softmax-averaged V shrinks as 1/sqrt(keys) (an absolute 3e-2
    would pass an all-zero output from 16K keys on)."""
    return 1e-3 + 3e-2 * want.abs().max().item()


class Bench:
    """Collects rows for one results file (one kernel family or end-to-end run)."""

    def __init__(self, name: str, argv: list[str] | None = None, description: str = ""):
        ap = argparse.ArgumentParser(description=description or f"Spillway benchmark: {name}")
        ap.add_argument("--quick", action="store_true", help="a small subset of the grid")
        ap.add_argument("--reps", type=int, default=30, help="timed repetitions (>= 20)")
        ap.add_argument("--warmup", type=int, default=5)
        ap.add_argument("--out", default=str(ROOT / "bench" / "results"), help="results root folder")
        ap.add_argument("--filter", default="", help="only cases whose name contains this")
        self.args, self.extra = ap.parse_known_args(argv)
        if self.args.reps < 20:
            raise SystemExit("--reps must be >= 20 (BENCH_FORMAT.md)")
        if not torch.cuda.is_available():
            raise SystemExit(f"{name}: no CUDA device visible to PyTorch; benchmarks need a GPU")
        self.name = name
        props = torch.cuda.get_device_properties(0)
        self.device = props.name
        self.sm_count = props.multi_processor_count
        self.l2_bytes = getattr(props, "L2_cache_size", 50 << 20)
        self.rows: list[dict] = []
        self.skips: list[tuple[str, str, str]] = []
        self._case: tuple[str, dict] | None = None
        self.failures = 0
        self.incomplete = ""
        # A time limit (`timeout`, tools/gpu/run_all.sh's deadline) sends SIGTERM: the rows
        # measured so far are still written, marked incomplete, instead of being lost.
        signal.signal(signal.SIGTERM, self._stopped)
        self.copy_gbs = self.measure_copy_bandwidth()
        print(f"[{name}] {self.device}, {self.sm_count} SMs, L2 {self.l2_bytes >> 20} MiB, "
              f"copy bandwidth {self.copy_gbs:.1f} GB/s", flush=True)

    @property
    def quick(self) -> bool:
        return self.args.quick

    def measure_copy_bandwidth(self, nbytes: int = 1 << 30) -> float:
        """Large device-to-device copy; GB/s counting bytes read plus bytes written."""
        src = torch.empty(nbytes, dtype=torch.uint8, device="cuda").random_()
        dst = torch.empty_like(src)
        us = median_time_us(lambda i: dst.copy_(src), warmup=3, reps=20)
        del src, dst
        return 2 * nbytes / (us * 1e-6) / 1e9

    def rotation_count(self, bytes_per_set: int, max_sets: int = 64) -> int:
        """Input copies to rotate so that their total is >= 3x L2: each repetition then finds
        its inputs evicted from L2 by the ones used since."""
        return max(1, min(max_sets, math.ceil(3 * self.l2_bytes / max(1, bytes_per_set))))

    def case(self, case: str, params: dict) -> bool:
        """Starts a case; returns False when --filter excludes it (then skip its timing)."""
        self._case = (case, dict(params))
        return self.args.filter in case

    def time(self, impl: str, fn, bytes: float, flops: float | None = None) -> float:
        """Times fn(i) (launching on the current torch stream) and records a row."""
        assert self._case is not None, "call case() first"
        case, params = self._case
        us = median_time_us(fn, self.args.warmup, self.args.reps)
        row = {"case": case, "impl": impl, "median_us": round(us, 3),
               "gbs": round(bytes / (us * 1e-6) / 1e9, 1),
               "pct_copy": round(100 * bytes / (us * 1e-6) / 1e9 / self.copy_gbs, 1),
               "params": params}
        if flops:
            row["tflops"] = round(flops / (us * 1e-6) / 1e12, 2)
        self.rows.append(row)
        extra = f"  {row['tflops']:8.2f} TFLOP/s" if flops else ""
        print(f"  {case:<44} {impl:<22} {us:10.2f} us {row['gbs']:9.1f} GB/s "
              f"({row['pct_copy']:5.1f}% of copy){extra}", flush=True)
        return us

    def attempt(self, run_case, *args, **kwargs) -> None:
        """Runs one case, run_case(*args, **kwargs); if it raises, fail() records it and the run
        goes on with the next case."""
        try:
            run_case(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - recorded; the other cases still run
            self.fail(e)

    def fail(self, exc: BaseException) -> None:
        """Records that the current case raised (its impls not timed yet are not run) and lets
        the run go on with the next case; write() then exits non-zero after writing the file."""
        traceback.print_exception(exc)
        self.failures += 1
        self.skip("*", f"case failed: {type(exc).__name__}: {str(exc)[:300]}")
        e = exc
        while e is not None:  # drop the failed case's frames (its tensors) before empty_cache
            if e.__traceback__ is not None:
                traceback.clear_frames(e.__traceback__)
            e.__traceback__, e = None, e.__context__
        try:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001 - a dead context fails every later case the same way
            pass

    def skip(self, impl: str, reason: str) -> None:
        """Records that impl could not run on the current case, and why."""
        case = self._case[0] if self._case else "*"
        self.skips.append((case, impl, reason))
        print(f"  {case:<44} {impl:<22} skipped: {reason}", flush=True)

    def _stopped(self, signum, frame) -> None:
        """SIGTERM handler: writes the rows measured so far, marked incomplete, and exits 124
        (what `timeout` reports) without running the rest of the grid."""
        self.incomplete = (f"stopped by {signal.Signals(signum).name} (a time limit) after "
                           f"{len(self.rows)} rows; the rest of the grid was not run")
        print(f"[{self.name}] {self.incomplete}", flush=True)
        try:
            self.write()
        except SystemExit as e:  # failed cases: already reported by write()
            print(e, flush=True)
        finally:
            _hard_exit(124)

    # ------------------------------------------------------------ output
    def write(self) -> pathlib.Path:
        out_dir = pathlib.Path(self.args.out) / device_slug(self.device)
        out_dir.mkdir(parents=True, exist_ok=True)
        doc = {"name": self.name, "device": self.device, "driver": driver_version(),
               "commit": git_commit(),
               "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "copy_bandwidth_gbs": round(self.copy_gbs, 1), "sm_count": self.sm_count, "rows": self.rows}
        if self.incomplete:
            doc["incomplete"] = self.incomplete
        if self.skips:
            doc["skipped"] = [{"case": c, "impl": i, "reason": r} for c, i, r in self.skips]
        json_path = out_dir / f"{self.name}.json"
        json_path.write_text(json.dumps(doc, indent=1) + "\n")
        (out_dir / f"{self.name}.md").write_text(markdown_table(doc))
        print(f"[{self.name}] wrote {json_path} and {self.name}.md ({len(self.rows)} rows)")
        if self.failures:
            raise SystemExit(f"[{self.name}] {self.failures} case(s) failed: see 'Not run' in {self.name}.md")
        return json_path


if __name__ == "__main__":
    print(__doc__)
    sys.exit(0)
