"""SGMV (batched multi-LoRA, y += scale * x A^T B per segment): Spillway vs baselines.

Cases (params: segments, layout, rank, hidden, tokens):
  decode   1..256 one-token segments, rank {8, 16, 64, 128}, hidden 4096, layouts
           "distinct" (every segment its own adapter), "uniform" (8 adapters, round robin),
           "identical" (one adapter); "mixed_ranks" (distinct adapters with ranks 8/16/64/128,
           rank = the largest);
  prefill  segments of 128..512 tokens, rank {16, 64}, distinct adapters.
Impls (same process, same inputs):
  spillway        spw_sgmv_apply (C ABI): shrink + expand, expand overlapping shrink's tail on
                  sm_90 (programmatic dependent launch), fp32 intermediate, automatic path
  spillway:two_calls  spw_sgmv_shrink then spw_sgmv_expand (no overlap)
  spillway:tiled  prefill only: the CUDA-core 8-token path forced, to show what tensor cores add
  gather_bmm      PyTorch: per-token gather of A and B, two bmm (the usual naive approach)
  cublas_grouped  cublasGemmGroupedBatchedEx, one problem per segment, shrink then expand
                  (bench-only entry spw_sgmv_baseline_cublas_grouped), fp16/bf16 intermediate
  flat_gemm_loop  Spillway's flat GEMM (spw_flat_gemm_run, dispatcher's plan) twice per segment
                  with an adapter: v = x A^T (fp16), then y = v B + y (residual epilogue, in
                  place); B kept transposed per adapter ([hidden, rank], made before timing)
Bytes: each used adapter's A and B read once, x read, y read and written.
Plot: python3 bench/plot.py bench/results/<device>/sgmv.json --x segments --y median_us --facet layout
"""
import ctypes

import harness  # (before torch: it says what to do when PyTorch is missing)
import torch

import flat_gemm

HIDDEN = 4096
DTYPE = torch.float16
SPW_FP16 = 0


class Problem(ctypes.Structure):
    _fields_ = [("dtype", ctypes.c_int), ("tokens", ctypes.c_int), ("segments", ctypes.c_int),
                ("num_adapters", ctypes.c_int), ("hidden", ctypes.c_int), ("rank_max", ctypes.c_int),
                ("num_slices", ctypes.c_int), ("slice_out_offset", ctypes.c_int * 4),
                ("slice_out_size", ctypes.c_int * 4), ("y_cols", ctypes.c_int),
                ("x_stride", ctypes.c_longlong), ("y_stride", ctypes.c_longlong), ("path", ctypes.c_int)]

PATH_AUTO, PATH_TILED = 0, 2


def setup_lib(lib):
    vp, i32p = ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32)
    lib.spw_sgmv_plan_create.argtypes = [ctypes.POINTER(Problem), i32p, i32p, i32p, ctypes.c_int,
                                         ctypes.POINTER(vp)]
    lib.spw_sgmv_plan_workspace_bytes.argtypes = [vp, ctypes.POINTER(ctypes.c_size_t)]
    lib.spw_sgmv_plan_destroy.argtypes = [vp]
    lib.spw_sgmv_plan_destroy.restype = None
    lib.spw_sgmv_shrink.argtypes = [vp, vp, vp, vp, vp, vp, vp, vp, vp, ctypes.c_size_t, vp]
    lib.spw_sgmv_expand.argtypes = [vp, vp, vp, vp, vp, vp, vp, vp, ctypes.c_float, vp, vp]
    lib.spw_sgmv_apply.argtypes = [vp, vp, vp, vp, vp, vp, vp, vp, vp, vp, vp, ctypes.c_float, vp, vp,
                                   ctypes.c_size_t, vp]
    ip = ctypes.POINTER(ctypes.c_int)
    lib.spw_sgmv_baseline_cublas_grouped.argtypes = [ctypes.c_int, ctypes.c_int, ip, ip, ip, vp, ip, vp, ip,
                                                     ctypes.c_int, vp, ip, ctypes.c_int, ctypes.c_float,
                                                     ctypes.c_float, vp]


def int_array(values):
    return (ctypes.c_int * max(1, len(values)))(*values)


class Batch:
    """One input set: adapters (A [n, rank_max, hidden], B [n, rank_max, hidden]), x, y, segments."""

    def __init__(self, lens, adapter_ids, ranks, rank_max):
        self.lens, self.ids, self.ranks, self.rank_max = lens, adapter_ids, ranks, rank_max
        n, t = len(ranks), sum(lens)
        self.tokens = t
        scale_a = 1.0 / HIDDEN ** 0.5
        self.A = (torch.randn(n, rank_max, HIDDEN, device="cuda") * scale_a).to(DTYPE)
        self.B = (torch.randn(n, rank_max, HIDDEN, device="cuda") * 0.1).to(DTYPE)
        for a, r in enumerate(ranks):  # rows past an adapter's rank are padding: zero for the baselines
            self.A[a, r:].zero_()
            self.B[a, r:].zero_()
        self.x = torch.randn(t, HIDDEN, device="cuda").to(DTYPE)
        self.y = torch.randn(t, HIDDEN, device="cuda").to(DTYPE)
        starts = [0]
        for ln in lens:
            starts.append(starts[-1] + ln)
        self.starts = starts
        self.d_starts = torch.tensor(starts, dtype=torch.int32, device="cuda")
        self.d_ids = torch.tensor(adapter_ids, dtype=torch.int32, device="cuda")
        self.d_ranks = torch.tensor(ranks, dtype=torch.int32, device="cuda")
        self.v = torch.empty(t, rank_max, dtype=torch.float32, device="cuda")
        # Baselines: per-token adapter index (gather-bmm); per-segment pointers (cuBLAS grouped).
        self.token_ids = torch.repeat_interleave(self.d_ids.long(), torch.tensor(lens, device="cuda"))
        self.v16 = torch.empty(t, rank_max, dtype=DTYPE, device="cuda")
        el = self.x.element_size()
        segs = range(len(lens))
        self.c_x = torch.tensor([self.x.data_ptr() + starts[i] * HIDDEN * el for i in segs], dtype=torch.int64,
                                device="cuda")
        self.c_y = torch.tensor([self.y.data_ptr() + starts[i] * HIDDEN * el for i in segs], dtype=torch.int64,
                                device="cuda")
        self.c_v = torch.tensor([self.v16.data_ptr() + starts[i] * rank_max * el for i in segs], dtype=torch.int64,
                                device="cuda")
        self.c_a = torch.tensor([self.A[adapter_ids[i]].data_ptr() for i in segs], dtype=torch.int64, device="cuda")
        self.c_b = torch.tensor([self.B[adapter_ids[i]].data_ptr() for i in segs], dtype=torch.int64, device="cuda")

    def bytes(self):
        el = self.x.element_size()
        used = sorted(set(self.ids))
        w = sum(2 * self.ranks[a] * HIDDEN * el for a in used)
        return w + 3 * self.tokens * HIDDEN * el


def make_plan(lib, batch, sm_count, path=PATH_AUTO):
    p = Problem()
    p.path = path
    p.dtype, p.tokens, p.segments = SPW_FP16, batch.tokens, len(batch.lens)
    p.num_adapters, p.hidden, p.rank_max, p.num_slices = len(batch.ranks), HIDDEN, batch.rank_max, 1
    p.slice_out_offset[0], p.slice_out_size[0], p.y_cols = 0, HIDDEN, HIDDEN
    arr = lambda v: (ctypes.c_int32 * len(v))(*v)  # noqa: E731
    plan = ctypes.c_void_p()
    harness.check(lib, lib.spw_sgmv_plan_create(ctypes.byref(p), arr(batch.starts), arr(batch.ids),
                                                arr(batch.ranks), sm_count, ctypes.byref(plan)),
                  "spw_sgmv_plan_create")
    ws = ctypes.c_size_t()
    harness.check(lib, lib.spw_sgmv_plan_workspace_bytes(plan, ctypes.byref(ws)), "workspace_bytes")
    workspace = torch.zeros(max(16, ws.value), dtype=torch.uint8, device="cuda")
    return plan, workspace


def run_spillway(lib, plan, workspace, b):
    s = harness.stream_ptr()
    harness.check(lib, lib.spw_sgmv_apply(plan, b.d_starts.data_ptr(), b.d_ids.data_ptr(), b.d_ranks.data_ptr(),
                                          b.x.data_ptr(), None, b.A.data_ptr(), b.v.data_ptr(), None,
                                          b.B.data_ptr(), b.y.data_ptr(), 1.0, None, workspace.data_ptr(),
                                          workspace.numel(), s), "spw_sgmv_apply")


def run_spillway_two_calls(lib, plan, workspace, b):
    s = harness.stream_ptr()
    harness.check(lib, lib.spw_sgmv_shrink(plan, b.d_starts.data_ptr(), b.d_ids.data_ptr(), b.d_ranks.data_ptr(),
                                           b.x.data_ptr(), None, b.A.data_ptr(), b.v.data_ptr(),
                                           workspace.data_ptr(), workspace.numel(), s), "spw_sgmv_shrink")
    harness.check(lib, lib.spw_sgmv_expand(plan, b.d_starts.data_ptr(), b.d_ids.data_ptr(), b.d_ranks.data_ptr(),
                                           b.v.data_ptr(), None, b.B.data_ptr(), b.y.data_ptr(), 1.0, None, s),
                  "spw_sgmv_expand")


def verify(b, what, run, who="spillway"):
    """Runs run() (one impl applied to b) once and checks up to 16 segments against fp32 torch;
    y is restored after."""
    y0 = b.y.clone()
    run()
    torch.cuda.synchronize()
    out = b.y.float()
    b.y.copy_(y0)
    segs = list(range(len(b.lens)))
    for i in sorted(set(segs[:8] + segs[-8:])):
        s, e, a = b.starts[i], b.starts[i + 1], b.ids[i]
        if e == s or a < 0:
            continue
        r = b.ranks[a]
        ref = y0[s:e].float() + (b.x[s:e].float() @ b.A[a, :r].float().t()) @ b.B[a, :r].float()
        err = (out[s:e] - ref).abs().max().item()
        if not err <= 3e-2 * max(1.0, ref.abs().max().item()):
            raise RuntimeError(f"{what}: {who} differs from fp32 torch on segment {i}: max abs error {err:.3g}")


def run_gather_bmm(b):
    a = b.A[b.token_ids]                                   # [T, R, H]: the naive per-token weight gather
    v = torch.bmm(b.x.unsqueeze(1), a.transpose(1, 2))     # [T, 1, R]
    b.y += torch.bmm(v, b.B[b.token_ids]).squeeze(1)       # [T, 1, H]


def run_cublas_grouped(lib, b, shape):
    m, rk, k_h, lda_h, ld_r, ld_rm = shape
    s = harness.stream_ptr()
    n = len(b.lens)
    # shrink: v16[m, r] = x[m, H] . A[r, H]^T
    harness.check(lib, lib.spw_sgmv_baseline_cublas_grouped(SPW_FP16, n, m, rk, k_h, b.c_x.data_ptr(), lda_h,
                                                            b.c_a.data_ptr(), lda_h, 1, b.c_v.data_ptr(), ld_rm, 0,
                                                            1.0, 0.0, s), "cublas shrink")
    # expand: y[m, H] += v16[m, r] . B[r, H]
    harness.check(lib, lib.spw_sgmv_baseline_cublas_grouped(SPW_FP16, n, m, k_h, rk, b.c_v.data_ptr(), ld_rm,
                                                            b.c_b.data_ptr(), lda_h, 0, b.c_y.data_ptr(), lda_h, 0,
                                                            1.0, 1.0, s), "cublas expand")


class FlatGemmLoop:
    """The flat-GEMM-per-segment baseline on one Batch: plans per (rows, n, k, residual), B^T per
    used adapter and a contiguous fp16 v per segment, all made here, outside the timing."""

    def __init__(self, lib, lt, b, sm_count=0):
        self.lib, self.lt, self.sm_count = lib, lt, sm_count
        self.plans = {}
        bt = {a: b.B[a, :b.ranks[a]].t().contiguous() for a in sorted(set(b.ids)) if a >= 0}
        total = sum((b.starts[i + 1] - b.starts[i]) * b.ranks[a] for i, a in enumerate(b.ids) if a >= 0)
        self.v = torch.empty(max(1, total), dtype=DTYPE, device="cuda")
        self.steps = []  # (shrink plan, x, A, v, expand plan, B^T, y) per segment with an adapter
        off = 0
        for i, a in enumerate(b.ids):
            s, e = b.starts[i], b.starts[i + 1]
            if a < 0 or e == s:
                continue
            m, r = e - s, b.ranks[a]
            v = self.v[off:off + m * r]
            off += m * r
            self.steps.append((self.plan(m, r, HIDDEN, 0), b.x[s:e], b.A[a, :r], v,
                               self.plan(m, HIDDEN, r, 1), bt[a], b.y[s:e]))

    def plan(self, m, n, k, residual):
        key = (m, n, k, residual)
        if key not in self.plans:
            self.plans[key] = flat_gemm.Planned(self.lib, self.lt, m, n, k, SPW_FP16, has_residual=residual,
                                                sm_count=self.sm_count)
        return self.plans[key]

    def run(self):
        for shrink, x, a, v, expand, bt, y in self.steps:
            shrink.call(x, a, v)
            expand.call(v, bt, y, residual=y)

    def close(self):
        for pl in self.plans.values():
            pl.close()


def cublas_shapes(b):
    n = len(b.lens)
    m = int_array(b.lens)
    rk = int_array([b.ranks[a] for a in b.ids])
    hid = int_array([HIDDEN] * n)
    rmax = int_array([b.rank_max] * n)
    # (m, n of shrink = rank, k = hidden, lda = ldb = H, ld of v = rank_max); expand reuses them.
    return m, rk, hid, hid, rk, rmax


def time_case(b_, *args, **kwargs):
    b_.attempt(_time_case, b_, *args, **kwargs)


def _time_case(b_, lib, lt, name, params, lens, ids, ranks, rank_max, flops_on=False):
    if not b_.case(name, params):
        return
    probe = Batch(lens, ids, ranks, rank_max)
    nbytes = probe.bytes()
    budget = 6 << 30
    per_set = (probe.A.numel() + probe.B.numel()) * 2 + 3 * probe.x.numel() * 2
    sets = max(1, min(b_.rotation_count(nbytes), budget // max(1, per_set)))
    batches = [probe] + [Batch(lens, ids, ranks, rank_max) for _ in range(sets - 1)]
    flops = 4.0 * sum(ln * ranks[a] * HIDDEN for ln, a in zip(lens, ids)) if flops_on else None
    plans = [make_plan(lib, bb, b_.sm_count) for bb in batches]
    loops = []
    try:
        verify(batches[0], name, lambda: run_spillway(lib, *plans[0], batches[0]))
        b_.time("spillway", lambda i: run_spillway(lib, *plans[i % sets], batches[i % sets]), bytes=nbytes,
                flops=flops)
        b_.time("spillway:two_calls", lambda i: run_spillway_two_calls(lib, *plans[i % sets], batches[i % sets]),
                bytes=nbytes, flops=flops)
        if flops_on:  # prefill: the CUDA-core tiled path next to the automatic (tensor-core) one
            tiled = [make_plan(lib, bb, b_.sm_count, PATH_TILED) for bb in batches]
            plans += tiled
            verify(batches[0], name + " (tiled)", lambda: run_spillway(lib, *tiled[0], batches[0]))
            b_.time("spillway:tiled", lambda i: run_spillway(lib, *tiled[i % sets], batches[i % sets]),
                    bytes=nbytes, flops=flops)
        gather_bytes = sum(bb.tokens for bb in batches[:1]) * rank_max * HIDDEN * 2 * 2
        if gather_bytes > (8 << 30):
            b_.skip("gather_bmm", f"per-token weight gather would need {gather_bytes >> 30} GiB")
        else:
            b_.time("gather_bmm", lambda i: run_gather_bmm(batches[i % sets]), bytes=nbytes, flops=flops)
        shapes = [cublas_shapes(bb) for bb in batches]
        b_.time("cublas_grouped", lambda i: run_cublas_grouped(lib, batches[i % sets], shapes[i % sets]),
                bytes=nbytes, flops=flops)
        loops.extend(FlatGemmLoop(lib, lt, bb) for bb in batches)
        verify(batches[0], name, loops[0].run, who="flat_gemm_loop")
        b_.time("flat_gemm_loop", lambda i: loops[i % sets].run(), bytes=nbytes, flops=flops)
    finally:
        for plan, _ in plans:
            lib.spw_sgmv_plan_destroy(plan)
        for loop in loops:
            loop.close()
        del batches, plans, loops
        torch.cuda.empty_cache()


def main() -> None:
    b_ = harness.Bench("sgmv")
    lib = harness.load_spillway()
    setup_lib(lib)
    flat_gemm.setup_lib(lib)
    lt = ctypes.c_void_p()  # cuBLASLt handle: the flat GEMM dispatcher's choice for prefill-sized segments
    harness.check(lib, lib.spw_flat_gemm_cublaslt_create(ctypes.byref(lt)), "cublaslt_create")
    torch.manual_seed(0)
    seg_grid = [1, 8, 64, 256] if b_.quick else [1, 2, 4, 8, 16, 32, 64, 128, 256]
    rank_grid = [16, 64] if b_.quick else [8, 16, 64, 128]
    for layout in ("distinct", "uniform", "identical"):
        for rank in rank_grid:
            for segs in seg_grid:
                if layout == "distinct":
                    ids, n_adapters = list(range(segs)), segs
                elif layout == "uniform":
                    n_adapters = min(8, segs)
                    ids = [i % n_adapters for i in range(segs)]
                else:
                    ids, n_adapters = [0] * segs, 1
                params = {"segments": segs, "layout": layout, "rank": rank, "hidden": HIDDEN, "tokens": segs}
                time_case(b_, lib, lt, f"decode_{layout}_s{segs}_r{rank}", params, [1] * segs, ids,
                          [rank] * n_adapters, rank)
    for segs in ([16, 64] if b_.quick else [4, 16, 64, 256]):
        ranks = [(8, 16, 64, 128)[i % 4] for i in range(segs)]
        params = {"segments": segs, "layout": "mixed_ranks", "rank": 128, "hidden": HIDDEN, "tokens": segs}
        time_case(b_, lib, lt, f"decode_mixed_ranks_s{segs}", params, [1] * segs, list(range(segs)), ranks, 128)
    prefill = [[128] * 8, [256] * 4, [512] * 2, [128, 256, 384, 512]]
    for lens in (prefill[:2] if b_.quick else prefill):
        for rank in (16, 64):
            segs, toks = len(lens), sum(lens)
            params = {"segments": segs, "layout": "prefill", "rank": rank, "hidden": HIDDEN, "tokens": toks}
            time_case(b_, lib, lt, f"prefill_s{segs}_t{toks}_r{rank}", params, lens, list(range(segs)),
                      [rank] * segs, rank, flops_on=True)
    lib.spw_flat_gemm_cublaslt_destroy(lt)
    b_.write()


if __name__ == "__main__":
    main()
