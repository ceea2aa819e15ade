"""Flat GEMM (Y[M, N] = X[M, K] · W[N, K]^T, decode-sized M): Spillway vs cuBLASLt vs torch.matmul.

Grid (params m, n, k, dtype): M in {1, 2, 4, 8, 16, 32, 64} x (N, K) of Llama-2-7B / Llama-3-8B
(4096x4096, 12288x4096 fused QKV, 6144x4096, 22016x4096 and 28672x4096 fused gate/up,
4096x11008, 4096x14336, lm_head 32000x4096 and 128256x4096), fp16 and bf16. --quick: fewer.
Impls (same process, same inputs, inputs rotated so that the weights are not in L2):
  spillway           spw_flat_gemm_run with the dispatcher's plan (table row or rules)
  spillway:gemv      the GEMV impl forced (M <= 8)          } shown so the table can be
  spillway:mma       the tensor-core impl, rule split-K      } checked against them
  cublaslt           spw_flat_gemm_run with the cuBLASLt impl forced: cublasLtMatmul, fp32
                     compute, the fastest of the heuristic's top 8 algorithms (timed first),
                     output in the input dtype, no epilogue
  torch_matmul       torch.matmul(x, w.t())
Bytes: X, W read once, Y written once (2 bytes each). FLOPs: 2·M·N·K.

--autotune: times every candidate (gemv for M <= 8; mma with split-K 1, 2, 3, 4, 6, 8, 12, 16;
cuBLASLt) per fp16 case and writes the winners as dispatch-table rows to
bench/results/<device>/flat_gemm_dispatch_table.h (paste them into
kernels/flat_gemm/dispatch_table.h, or pass --write-table to overwrite that file), then
rebuild and rerun the plain benchmark (with --write-table the script stops after the table: this
process still runs the library built with the old one; tools/gpu/run_all.sh's autotune stage
rebuilds before its bench stage).
Plot: python3 bench/plot.py bench/results/<device>/flat_gemm.json --x m --y gbs --facet n --logx
"""
import argparse
import ctypes
import pathlib

import harness  # (before torch: it says what to do when PyTorch is missing)
import torch


ROOT = pathlib.Path(__file__).resolve().parent.parent
SPW_FP16, SPW_BF16 = 0, 1
AUTO, GEMV, MMA, CUBLASLT = 0, 1, 2, 3
IMPL_NAMES = {GEMV: "gemv", MMA: "mma", CUBLASLT: "cublaslt"}
M_GRID = [1, 2, 4, 8, 16, 32, 64]
SHAPES = [(4096, 4096), (12288, 4096), (6144, 4096), (22016, 4096), (28672, 4096),
          (4096, 11008), (4096, 14336), (32000, 4096), (128256, 4096)]
SPLITS = [1, 2, 3, 4, 6, 8, 12, 16]
CUBLASLT_ALGOS = 8


class Problem(ctypes.Structure):
    _fields_ = [("dtype", ctypes.c_int), ("out_dtype", ctypes.c_int), ("m", ctypes.c_int), ("n", ctypes.c_int),
                ("k", ctypes.c_int), ("has_bias", ctypes.c_int), ("has_residual", ctypes.c_int),
                ("swiglu", ctypes.c_int), ("impl", ctypes.c_int), ("split_k", ctypes.c_int),
                ("cublaslt_algo", ctypes.c_int), ("batch_invariant", ctypes.c_int)]


def setup_lib(lib):
    vp, sz = ctypes.c_void_p, ctypes.c_size_t
    ip = ctypes.POINTER(ctypes.c_int)
    lib.spw_flat_gemm_plan_create.argtypes = [ctypes.POINTER(Problem), ctypes.c_int, ctypes.POINTER(vp)]
    lib.spw_flat_gemm_plan_info.argtypes = [vp, ip, ip, ip, ctypes.POINTER(sz)]
    lib.spw_flat_gemm_plan_destroy.argtypes = [vp]
    lib.spw_flat_gemm_plan_destroy.restype = None
    lib.spw_flat_gemm_run.argtypes = [vp, vp, vp, vp, vp, vp, vp, sz, vp, vp]
    lib.spw_flat_gemm_cublaslt_create.argtypes = [ctypes.POINTER(vp)]
    lib.spw_flat_gemm_cublaslt_destroy.argtypes = [vp]


class Planned:
    """A C-ABI plan with its workspace; call(x, w, y) launches on the current torch stream.
    has_residual: y = x . w^T + residual (call's residual; may be y itself)."""

    def __init__(self, lib, lt, m, n, k, dt, impl=AUTO, split_k=0, algo=0, has_residual=0, sm_count=0):
        self.lib, self.lt, self.algo = lib, lt, algo
        p = Problem(dt, dt, m, n, k, 0, has_residual, 0, impl, split_k, algo)
        self.handle = ctypes.c_void_p()
        harness.check(lib, lib.spw_flat_gemm_plan_create(ctypes.byref(p), sm_count, ctypes.byref(self.handle)),
                      "plan")
        i, s, t, ws = ctypes.c_int(), ctypes.c_int(), ctypes.c_int(), ctypes.c_size_t()
        harness.check(lib, lib.spw_flat_gemm_plan_info(self.handle, ctypes.byref(i), ctypes.byref(s),
                                                       ctypes.byref(t), ctypes.byref(ws)), "plan_info")
        self.impl, self.split_k, self.from_table = i.value, s.value, bool(t.value)
        self.ws_bytes = ws.value
        self.ws = torch.empty(max(self.ws_bytes, 16), dtype=torch.uint8, device="cuda")

    def call(self, x, w, y, residual=None):
        harness.check(self.lib, self.lib.spw_flat_gemm_run(self.handle, x.data_ptr(), w.data_ptr(), None,
                                                           None if residual is None else residual.data_ptr(),
                                                           y.data_ptr(), self.ws.data_ptr(), self.ws_bytes,
                                                           self.lt, harness.stream_ptr()), "run")

    def close(self):
        self.lib.spw_flat_gemm_plan_destroy(self.handle)


def make_inputs(b, m, n, k, tdt):
    bytes_per_set = (m * k + n * k + m * n) * 2
    sets = b.rotation_count(bytes_per_set)
    xs = [torch.randn(m, k, dtype=tdt, device="cuda") for _ in range(sets)]
    ws = [torch.randn(n, k, dtype=tdt, device="cuda") * 0.05 for _ in range(sets)]
    ys = [torch.empty(m, n, dtype=tdt, device="cuda") for _ in range(sets)]
    return xs, ws, ys, sets, bytes_per_set


def best_cublaslt(b, lib, lt, m, n, k, dt, xs, ws, ys, sets):
    """The cuBLASLt plan whose heuristic algorithm (of its top CUBLASLT_ALGOS) is fastest here."""
    best = None
    for algo in range(CUBLASLT_ALGOS):
        pl = Planned(lib, lt, m, n, k, dt, CUBLASLT, 0, algo)
        try:
            pl.call(xs[0], ws[0], ys[0])
        except RuntimeError:  # cuBLASLt offered fewer algorithms
            pl.close()
            break
        us = harness.median_time_us(lambda i: pl.call(xs[i % sets], ws[i % sets], ys[i % sets]), 2, 20)
        if best is None or us < best[0]:
            if best:
                best[1].close()
            best = (us, pl)
        else:
            pl.close()
    if best is None:
        return None
    print(f"  cuBLASLt: best heuristic algorithm {best[1].algo} of those tried ({best[0]:.2f} us)")
    return best[1]


def check_close(y, ref, what):
    err = (y.float() - ref.float()).norm() / ref.float().norm().clamp_min(1e-6)
    if err > 2e-2:
        raise RuntimeError(f"{what}: relative error {err:.3e} against torch.matmul")


def autotune(b, lib, lt, shapes, m_grid, out_path: pathlib.Path, write_table: bool):
    device_match = b.device
    rows = []
    for n, k in shapes:
        chosen = []
        for m in m_grid:
            xs, ws, ys, sets, _ = make_inputs(b, m, n, k, torch.float16)
            cands = ([(GEMV, 0)] if m <= 8 else []) + [(MMA, s) for s in SPLITS if s * 64 <= k] + [(CUBLASLT, 0)]
            best = None
            for impl, split in cands:
                pl = Planned(lib, lt, m, n, k, SPW_FP16, impl, split)
                if impl == MMA and pl.split_k != split:
                    pl.close()
                    continue
                us = harness.median_time_us(lambda i: pl.call(xs[i % sets], ws[i % sets], ys[i % sets]),
                                            b.args.warmup, b.args.reps)
                print(f"  autotune m{m}_n{n}_k{k} {IMPL_NAMES[impl]:<9} split {max(split, 1):2d}: {us:9.2f} us")
                if best is None or us < best[0]:
                    best = (us, impl, max(split, 1))
                pl.close()
            chosen.append((m, best[1], best[2]))
            del xs, ws, ys
            torch.cuda.empty_cache()
        # Merge neighbouring M values with the same choice: one row per run, m_max = its last M.
        for idx, (m, impl, split) in enumerate(chosen):
            nxt = chosen[idx + 1] if idx + 1 < len(chosen) else None
            if nxt and (nxt[1], nxt[2]) == (impl, split):
                continue
            rows.append(f'  {{"{device_match}", {n}, {k}, {m}, Impl::{IMPL_NAMES[impl]}, {split}}}, \\')
    text = ("// Measured dispatch table of the flat GEMM family (see the header of the committed file).\n"
            f"// Written by bench/flat_gemm.py --autotune on {b.device}, commit {harness.git_commit()}.\n"
            "#pragma once\n// clang-format off\n#define SPW_FLAT_GEMM_TABLE_ROWS \\\n" + "\n".join(rows) +
            "\n  /* end */\n// clang-format on\n")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text)
    print(f"dispatch table: {out_path}")
    if write_table:
        (ROOT / "kernels" / "flat_gemm" / "dispatch_table.h").write_text(text)
        print("wrote kernels/flat_gemm/dispatch_table.h (rebuild libspillway_c to use it)")


def run_case(b, lib, lt, m, n, k, tdt, dt, dname):
    case = f"m{m}_n{n}_k{k}_{dname}"
    if not b.case(case, {"m": m, "n": n, "k": k, "dtype": dname}):
        return
    xs, ws, ys, sets, nbytes = make_inputs(b, m, n, k, tdt)
    flops = 2.0 * m * n * k
    ref = torch.matmul(xs[0], ws[0].t())
    plans = {}
    try:
        plans["spillway"] = Planned(lib, lt, m, n, k, dt)
        if m <= 8:
            plans["spillway:gemv"] = Planned(lib, lt, m, n, k, dt, GEMV)
        else:
            b.skip("spillway:gemv", "M > 8")
        plans["spillway:mma"] = Planned(lib, lt, m, n, k, dt, MMA)
        lt_plan = best_cublaslt(b, lib, lt, m, n, k, dt, xs, ws, ys, sets)
        if lt_plan is None:
            b.skip("cublaslt", "cuBLASLt offered no algorithm that runs")
        else:
            plans["cublaslt"] = lt_plan
        print(f"  {case}: dispatcher -> {IMPL_NAMES[plans['spillway'].impl]} split "
              f"{plans['spillway'].split_k} ({'table' if plans['spillway'].from_table else 'rules'})")
        for name, pl in plans.items():
            pl.call(xs[0], ws[0], ys[0])
            check_close(ys[0], ref, f"{case} {name}")
            b.time(name, lambda i, pl=pl: pl.call(xs[i % sets], ws[i % sets], ys[i % sets]),
                   bytes=nbytes, flops=flops)
        b.time("torch_matmul", lambda i: torch.matmul(xs[i % sets], ws[i % sets].t(), out=ys[i % sets]),
               bytes=nbytes, flops=flops)
    finally:
        torch.cuda.synchronize()
        for pl in plans.values():
            pl.close()
        del xs, ws, ys, ref, plans
        torch.cuda.empty_cache()


def main() -> None:
    b = harness.Bench("flat_gemm")
    ap = argparse.ArgumentParser()
    ap.add_argument("--autotune", action="store_true", help="time every candidate, write dispatch-table rows")
    ap.add_argument("--write-table", action="store_true", help="with --autotune: overwrite dispatch_table.h")
    extra = ap.parse_args(b.extra)
    lib = harness.load_spillway()
    setup_lib(lib)
    lt = ctypes.c_void_p()
    harness.check(lib, lib.spw_flat_gemm_cublaslt_create(ctypes.byref(lt)), "cublaslt_create")
    torch.manual_seed(0)
    shapes = SHAPES[:1] + SHAPES[6:8] if b.quick else SHAPES
    m_grid = [1, 8, 64] if b.quick else M_GRID
    if extra.autotune:
        slug = harness.device_slug(b.device) if hasattr(harness, "device_slug") else b.device.lower().replace(" ", "-")
        autotune(b, lib, lt, shapes, m_grid, pathlib.Path(b.args.out) / slug / "flat_gemm_dispatch_table.h",
                 extra.write_table)
        if extra.write_table:  # the new table takes effect only in a rebuilt library: bench that
            lib.spw_flat_gemm_cublaslt_destroy(lt)
            return
    for tdt, dt, dname in ((torch.float16, SPW_FP16, "fp16"), (torch.bfloat16, SPW_BF16, "bf16")):
        for n, k in shapes:
            for m in m_grid:
                b.attempt(run_case, b, lib, lt, m, n, k, tdt, dt, dname)
    lib.spw_flat_gemm_cublaslt_destroy(lt)
    b.write()


if __name__ == "__main__":
    main()
