"""Decode attention (one query token per request over a paged KV cache): Spillway vs baselines.

Grid (params: batch, kv_len, qo_heads, kv_heads, head_dim, dtype, page_size):
  batch {1, 8, 32, 128} x kv_len {1K, 4K, 16K, 64K} (+128K at batch 1), Llama-3-8B heads
  (32 q / 8 kv, d 128) and MHA (32 / 32, d 128), fp16 and bf16, paged with page_size 16,
  every request of a case the same length. --quick: batch {1, 32} x kv_len {4K, 32K}, GQA fp16.
Impls (same process, same KV values):
  spillway          spw_decode_attention_run (C ABI), split-KV as planned for this GPU
  spillway:nosplit  the same kernel with disable_split (one CTA per request and KV head)
  spillway:fixed256 the same kernel with fixed_chunk_tokens = 256: the batch-invariant split the
                    CUDA backend's batch-invariant mode uses (what that mode costs here)
  flashinfer        BatchDecodeWithPagedKVCacheWrapper (NHD, same page pool and page table);
                    skipped with the reason when flashinfer cannot be imported or run
  torch_sdpa        F.scaled_dot_product_attention(enable_gqa=True) on a contiguous
                    [batch, kv_heads, kv_len, head_dim] copy of the same KV
Rotation: `sets` copies of the page pool (and of the SDPA tensors) are cycled so that the KV a
repetition reads is not in L2; the page table (shuffled pages) is shared by all sets.
Cases whose KV cache does not fit the free GPU memory are skipped with the reason.
Bytes: K and V read once (batch * kv_len * kv_heads * head_dim * 2 tensors), q read, O written.
Before timing, ours is checked against torch_sdpa (or an fp32 torch reference) once per case.
Plot: python3 bench/plot.py bench/results/<device>/decode_attention.json --x kv_len --y gbs --facet batch
"""
import ctypes
import math

import harness  # (before torch: it says what to do when PyTorch is missing)
import torch
import torch.nn.functional as F


SPW = {torch.float16: 0, torch.bfloat16: 1}
PAGE = 16
HEAD_DIM = 128


class Problem(ctypes.Structure):
    _fields_ = [("batch", ctypes.c_int), ("qo_heads", ctypes.c_int), ("kv_heads", ctypes.c_int),
                ("head_dim", ctypes.c_int), ("dtype", ctypes.c_int), ("layout", ctypes.c_int),
                ("page_size", ctypes.c_int), ("kv_len_max", ctypes.c_int), ("sm_scale", ctypes.c_float),
                ("soft_cap", ctypes.c_float), ("disable_split", ctypes.c_int),
                ("fixed_chunk_tokens", ctypes.c_int)]


def setup_lib(lib):
    vp = ctypes.c_void_p
    lib.spw_decode_attention_plan.argtypes = [ctypes.POINTER(Problem), ctypes.POINTER(ctypes.c_int32), ctypes.c_int,
                                              ctypes.POINTER(vp)]
    lib.spw_decode_attention_workspace_size.argtypes = [vp, ctypes.POINTER(ctypes.c_size_t)]
    lib.spw_decode_attention_run.argtypes = [vp, vp, vp, vp, vp, vp, vp, vp, vp, vp, ctypes.c_size_t, vp]
    lib.spw_decode_attention_destroy.argtypes = [vp]
    lib.spw_decode_attention_destroy.restype = None


class Ours:
    """A planned Spillway launch (plan handle + workspace) for one case."""

    def __init__(self, lib, sm_count, batch, kv_len, qh, kvh, dtype, nosplit, fixed=0):
        self.lib = lib
        p = Problem(batch, qh, kvh, HEAD_DIM, SPW[dtype], 0, PAGE, 0, 0.0, 0.0, 1 if nosplit else 0, fixed)
        lens = (ctypes.c_int32 * batch)(*([kv_len] * batch))
        self.handle = ctypes.c_void_p()
        harness.check(lib, lib.spw_decode_attention_plan(ctypes.byref(p), lens, sm_count, ctypes.byref(self.handle)),
                      "spw_decode_attention_plan")
        ws = ctypes.c_size_t()
        harness.check(lib, lib.spw_decode_attention_workspace_size(self.handle, ctypes.byref(ws)), "workspace_size")
        self.ws = torch.empty(max(16, ws.value), dtype=torch.uint8, device="cuda")

    def launch(self, q, k_pages, v_pages, indptr, indices, last, o, lse):
        harness.check(self.lib, self.lib.spw_decode_attention_run(
            self.handle, q.data_ptr(), k_pages.data_ptr(), v_pages.data_ptr(), indptr.data_ptr(), indices.data_ptr(),
            last.data_ptr(), o.data_ptr(), lse.data_ptr(), self.ws.data_ptr(), self.ws.numel(),
            harness.stream_ptr()), "spw_decode_attention_run")

    def close(self):
        torch.cuda.synchronize()  # the handle owns the host work list the launches copy from
        self.lib.spw_decode_attention_destroy(self.handle)


def flashinfer_wrapper(batch, qh, kvh, dtype, indptr, indices, last):
    """Planned FlashInfer paged decode wrapper, or a string saying why it cannot run."""
    try:
        import flashinfer  # noqa: PLC0415 - optional baseline
    except Exception as e:  # noqa: BLE001
        return f"flashinfer not importable: {type(e).__name__}: {e}"
    try:
        ws = torch.empty(128 << 20, dtype=torch.uint8, device="cuda")
        w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(ws, "NHD")
        w.plan(indptr, indices, last, qh, kvh, HEAD_DIM, PAGE, pos_encoding_mode="NONE", q_data_type=dtype,
               kv_data_type=dtype)
        w._spw_ws = ws
        return w
    except Exception as e:  # noqa: BLE001
        return f"flashinfer plan failed: {type(e).__name__}: {e}"


def grid(quick):
    if quick:
        return [(b, L, 32, 8, torch.float16) for b in (1, 32) for L in (4096, 32768)]
    cases = []
    for dtype in (torch.float16, torch.bfloat16):
        for qh, kvh in ((32, 8), (32, 32)):
            for b in (1, 8, 32, 128):
                for L in (1024, 4096, 16384, 65536) + ((131072,) if b == 1 else ()):
                    cases.append((b, L, qh, kvh, dtype))
    return cases


def run_case(b, lib, batch, kv_len, qh, kvh, dtype):
    name = f"b{batch}_kv{kv_len}_qh{qh}_kvh{kvh}_d{HEAD_DIM}_{'fp16' if dtype == torch.float16 else 'bf16'}"
    params = {"batch": batch, "kv_len": kv_len, "qo_heads": qh, "kv_heads": kvh, "head_dim": HEAD_DIM,
              "dtype": "fp16" if dtype == torch.float16 else "bf16", "page_size": PAGE}
    if not b.case(name, params):
        return
    esz = torch.finfo(dtype).bits // 8
    kv_bytes = 2 * batch * kv_len * kvh * HEAD_DIM * esz
    io_bytes = 2 * batch * qh * HEAD_DIM * esz
    free, _ = torch.cuda.mem_get_info()
    budget = int(0.8 * free)
    if kv_bytes > budget:
        for impl in ("spillway", "spillway:nosplit", "spillway:fixed256", "flashinfer", "torch_sdpa"):
            b.skip(impl, f"KV cache {kv_bytes / 2**30:.1f} GiB does not fit the free GPU memory")
        return
    with_sdpa = 2 * kv_bytes <= budget
    sets = max(1, min(b.rotation_count(kv_bytes), budget // (kv_bytes * (2 if with_sdpa else 1))))

    pages_per_req = math.ceil(kv_len / PAGE)
    num_pages = batch * pages_per_req
    gen = torch.Generator(device="cuda").manual_seed(0)
    indices = torch.randperm(num_pages, device="cuda", generator=gen).to(torch.int32)
    indptr = torch.arange(0, num_pages + 1, pages_per_req, dtype=torch.int32, device="cuda")
    last = torch.full((batch,), kv_len - (pages_per_req - 1) * PAGE, dtype=torch.int32, device="cuda")
    shape = (num_pages, PAGE, kvh, HEAD_DIM)
    k_sets = [torch.empty(shape, dtype=dtype, device="cuda").uniform_(-1, 1, generator=gen) for _ in range(sets)]
    v_sets = [torch.empty(shape, dtype=dtype, device="cuda").uniform_(-1, 1, generator=gen) for _ in range(sets)]
    q = torch.empty((batch, qh, HEAD_DIM), dtype=dtype, device="cuda").uniform_(-2, 2, generator=gen)
    o = torch.empty_like(q)
    lse = torch.empty((batch, qh), dtype=torch.float32, device="cuda")

    def contiguous(pool):  # [batch, kvh, kv_len, d] from the page table
        rows = pool[indices.long()].view(batch, pages_per_req * PAGE, kvh, HEAD_DIM)[:, :kv_len]
        return rows.transpose(1, 2).contiguous()

    sdpa_k = [contiguous(k) for k in k_sets] if with_sdpa else []
    sdpa_v = [contiguous(v) for v in v_sets] if with_sdpa else []
    q4 = q.view(batch, qh, 1, HEAD_DIM)

    def sdpa(i):
        return F.scaled_dot_product_attention(q4, sdpa_k[i % sets], sdpa_v[i % sets], enable_gqa=(qh != kvh))

    ours = Ours(lib, b.sm_count, batch, kv_len, qh, kvh, dtype, nosplit=False)
    nosplit = Ours(lib, b.sm_count, batch, kv_len, qh, kvh, dtype, nosplit=True)
    fixed = Ours(lib, b.sm_count, batch, kv_len, qh, kvh, dtype, nosplit=False, fixed=256)
    try:
        # One correctness check per case against SDPA (same KV), or fp32 torch on set 0.
        ours.launch(q, k_sets[0], v_sets[0], indptr, indices, last, o, lse)
        if with_sdpa:
            want = sdpa(0).view(batch, qh, HEAD_DIM).float()
        else:
            kk, vv = contiguous(k_sets[0][:]).float(), contiguous(v_sets[0][:]).float()
            want = F.scaled_dot_product_attention(q4.float(), kk, vv, enable_gqa=(qh != kvh)).view(batch, qh, HEAD_DIM)
            del kk, vv
        err = (o.float() - want).abs().max().item()
        tol = harness.attention_tolerance(want)
        if not err < tol:
            raise RuntimeError(f"{name}: spillway differs from torch by {err:.3e} (tolerance {tol:.2e})")

        nbytes = kv_bytes + io_bytes
        b.time("spillway", lambda i: ours.launch(q, k_sets[i % sets], v_sets[i % sets], indptr, indices, last, o, lse),
               bytes=nbytes)
        b.time("spillway:nosplit", lambda i: nosplit.launch(q, k_sets[i % sets], v_sets[i % sets], indptr, indices,
                                                            last, o, lse), bytes=nbytes)
        b.time("spillway:fixed256", lambda i: fixed.launch(q, k_sets[i % sets], v_sets[i % sets], indptr, indices,
                                                             last, o, lse), bytes=nbytes)
        fi = flashinfer_wrapper(batch, qh, kvh, dtype, indptr, indices, last)
        if isinstance(fi, str):
            b.skip("flashinfer", fi)
        else:
            try:
                fi.run(q, (k_sets[0], v_sets[0]))
                b.time("flashinfer", lambda i: fi.run(q, (k_sets[i % sets], v_sets[i % sets])), bytes=nbytes)
            except Exception as e:  # noqa: BLE001
                b.skip("flashinfer", f"run failed: {type(e).__name__}: {e}")
        if with_sdpa:
            try:
                b.time("torch_sdpa", sdpa, bytes=nbytes)
            except Exception as e:  # noqa: BLE001
                b.skip("torch_sdpa", f"{type(e).__name__}: {e}")
        else:
            b.skip("torch_sdpa", "a contiguous copy of the KV cache does not fit next to the page pool")
    finally:
        ours.close()
        nosplit.close()
        fixed.close()
    del k_sets, v_sets, sdpa_k, sdpa_v
    torch.cuda.empty_cache()


def main():
    b = harness.Bench("decode_attention", description=__doc__)
    lib = harness.load_spillway()
    setup_lib(lib)
    for batch, kv_len, qh, kvh, dtype in grid(b.quick):
        b.attempt(run_case, b, lib, batch, kv_len, qh, kvh, dtype)
    b.write()


if __name__ == "__main__":
    main()
