"""Tree attention (T draft tokens under a tree mask over a shared paged prefix): Spillway vs baselines.

Grid (params: batch, tree_tokens, prefix_len): T {1, 4, 16, 64, 128} x prefix {512, 4K, 32K} x
batch {1, 8, 32}, Llama-3-8B heads (32 q / 8 kv, d 128), fp16, page_size 16. The tree of every
request is a fixed random tree (seeded) with T tokens. --quick: batch {1, 8} x T {1, 16, 64} x prefix 4K.
Impls (same process, same prefix KV):
  spillway           spw_tree_attention_run (C ABI), the tensor-core mma kernel (tree_attention_mma.cu)
                     with the planner's choices (printed per case: prefix chunk, states, rows per CTA)
  spillway:v0        the same call with the v0 kernel (CUDA cores, one CTA per 16 query rows)
  spillway:rows128   mma with at most 128 query rows per CTA (row blocks re-read the prefix from L2,
                     fewer partial states): only where T x group > 128, to decide that planner question
  spillway:decode1   our decode attention for ONE token per request at the same prefix (the yardstick)
  spillway:decodeT   T separate decode-attention calls (one per tree token) over the prefix
  torch_sdpa         F.scaled_dot_product_attention with an explicit boolean mask over prefix + tree
Bytes: prefix K and V read once, tree q/k/v read, O written. FLOPs (spillway*): 4 x rows x keys x d over
prefix + tree keys (tensor-core work, the mma kernel's bound at large T).
Plot: python3 bench/plot.py bench/results/<device>/tree_attention.json --x tree_tokens --y ms --facet prefix_len
"""
import ctypes
import math
import random

import harness  # (before torch: it says what to do when PyTorch is missing)
import torch
import torch.nn.functional as F

import decode_attention as da

QH, KVH, D, PAGE = 32, 8, 128, 16
DT = torch.float16


class TreeProblem(ctypes.Structure):
    _fields_ = [("batch", ctypes.c_int), ("qo_heads", ctypes.c_int), ("kv_heads", ctypes.c_int),
                ("head_dim", ctypes.c_int), ("dtype", ctypes.c_int), ("page_size", ctypes.c_int),
                ("sm_scale", ctypes.c_float), ("soft_cap", ctypes.c_float)]


class TreeOptions(ctypes.Structure):
    _fields_ = [("impl", ctypes.c_int), ("chunk_tokens", ctypes.c_int), ("max_rows_per_cta", ctypes.c_int)]


class TreePlanInfo(ctypes.Structure):
    _fields_ = [(f, ctypes.c_int) for f in ("impl", "prefix_chunk_tokens", "num_states", "rows_per_cta",
                                             "row_blocks", "warps", "smem_bytes")]


# impl name -> spw_tree_attention_options (impl: 0 auto = mma, 1 v0, 2 mma; chunk_tokens; max_rows_per_cta)
IMPLS = {"spillway": (0, 0, 0), "spillway:v0": (1, 0, 0), "spillway:rows128": (2, 0, 128)}


def impls_for(T):
    return [n for n in IMPLS if n != "spillway:rows128" or T * QH // KVH > 128]


def setup_lib(lib):
    vp, i32p = ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32)
    lib.spw_tree_attention_plan.argtypes = [ctypes.POINTER(TreeProblem), i32p, i32p, i32p, ctypes.c_int,
                                            ctypes.POINTER(vp)]
    lib.spw_tree_attention_plan_ex.argtypes = [ctypes.POINTER(TreeProblem), i32p, i32p, i32p, ctypes.c_int,
                                               ctypes.POINTER(TreeOptions), ctypes.POINTER(vp)]
    lib.spw_tree_attention_plan_info_get.argtypes = [vp, ctypes.POINTER(TreePlanInfo)]
    lib.spw_tree_attention_workspace_size.argtypes = [vp, ctypes.POINTER(ctypes.c_size_t)]
    lib.spw_tree_attention_run.argtypes = [vp] * 12 + [ctypes.c_size_t, vp]
    lib.spw_tree_attention_destroy.argtypes = [vp]
    lib.spw_tree_attention_destroy.restype = None
    da.setup_lib(lib)


def random_parents(T, rng):
    return [rng.randint(-1, i - 1) for i in range(T)]


def ancestor_mask(parents):
    T = len(parents)
    m = torch.zeros(T, T, dtype=torch.bool)
    for i, p in enumerate(parents):
        if p >= 0:
            m[i] = m[p]
        m[i, i] = True
    return m


def plan_case(lib, sm_count, batch, T, prefix, parents, impl="spillway"):
    """Plan handle + workspace bytes for one case (every request the same tree and prefix)."""
    p = TreeProblem(batch, QH, KVH, D, 0, PAGE, 0.0, 0.0)
    opts = TreeOptions(*IMPLS[impl])
    arr = lambda xs: (ctypes.c_int32 * len(xs))(*xs)  # noqa: E731
    handle = ctypes.c_void_p()
    harness.check(lib, lib.spw_tree_attention_plan_ex(ctypes.byref(p), arr([prefix] * batch), arr([T] * batch),
                                                      arr(parents * batch), sm_count, ctypes.byref(opts),
                                                      ctypes.byref(handle)),
                  "spw_tree_attention_plan_ex")
    wsz = ctypes.c_size_t()
    harness.check(lib, lib.spw_tree_attention_workspace_size(handle, ctypes.byref(wsz)), "workspace_size")
    return handle, wsz.value


def plan_info(lib, handle):
    info = TreePlanInfo()
    harness.check(lib, lib.spw_tree_attention_plan_info_get(handle, ctypes.byref(info)), "plan_info_get")
    return info


def grid(quick):
    if quick:
        return [(bt, T, 4096) for bt in (1, 8) for T in (1, 16, 64)]
    return [(bt, T, pre) for pre in (512, 4096, 32768) for bt in (1, 8, 32) for T in (1, 4, 16, 64, 128)]


def run_case(b, lib, batch, T, prefix):
    name = f"b{batch}_T{T}_prefix{prefix}"
    if not b.case(name, {"batch": batch, "tree_tokens": T, "prefix_len": prefix}):
        return
    rng = random.Random(T * 1000 + batch)
    parents = random_parents(T, rng)
    gen = torch.Generator(device="cuda").manual_seed(0)
    pages = math.ceil(prefix / PAGE)
    num_pages = batch * pages
    kv_bytes = 2 * num_pages * PAGE * KVH * D * 2
    free, _ = torch.cuda.mem_get_info()
    sets = max(1, min(b.rotation_count(kv_bytes), int(0.4 * free) // kv_bytes))
    indices = torch.randperm(num_pages, device="cuda", generator=gen).to(torch.int32)
    indptr = torch.arange(0, num_pages + 1, pages, dtype=torch.int32, device="cuda")
    last = torch.full((batch,), prefix - (pages - 1) * PAGE, dtype=torch.int32, device="cuda")
    shape = (num_pages, PAGE, KVH, D)
    k_sets = [torch.empty(shape, dtype=DT, device="cuda").uniform_(-1, 1, generator=gen) for _ in range(sets)]
    v_sets = [torch.empty(shape, dtype=DT, device="cuda").uniform_(-1, 1, generator=gen) for _ in range(sets)]
    q = torch.empty((batch * T, QH, D), dtype=DT, device="cuda").uniform_(-2, 2, generator=gen)
    kt = torch.empty((batch * T, KVH, D), dtype=DT, device="cuda").uniform_(-1, 1, generator=gen)
    vt = torch.empty_like(kt).uniform_(-1, 1, generator=gen)
    o = torch.empty_like(q)
    lse = torch.empty((batch * T, QH), dtype=torch.float32, device="cuda")
    nbytes = kv_bytes + (q.numel() * 2 + kt.numel() * 2) * 2

    plans = {}  # impl -> (handle, workspace)
    for impl in impls_for(T):
        handle, wsz = plan_case(lib, b.sm_count, batch, T, prefix, parents, impl)
        plans[impl] = (handle, torch.empty(max(16, wsz), dtype=torch.uint8, device="cuda"))
        info = plan_info(lib, handle)
        print(f"  {name:<44} {impl:<22} plan: {'mma' if info.impl == 2 else 'v0'}, chunk "
              f"{info.prefix_chunk_tokens}, {info.num_states} states, {info.rows_per_cta} rows x "
              f"{info.row_blocks} blocks per KV head, {info.warps} warps, {info.smem_bytes} B smem", flush=True)

    def ours(impl):
        handle, ws = plans[impl]

        def launch(i):
            harness.check(lib, lib.spw_tree_attention_run(
                handle, q.data_ptr(), kt.data_ptr(), vt.data_ptr(), k_sets[i % sets].data_ptr(),
                v_sets[i % sets].data_ptr(), indptr.data_ptr(), indices.data_ptr(), last.data_ptr(), o.data_ptr(),
                lse.data_ptr(), ws.data_ptr(), ws.numel(), harness.stream_ptr()), "spw_tree_attention_run")
        return launch

    tree_keys = sum(int(m) for m in ancestor_mask(parents).sum(1)) / T  # mean ancestors + self
    flops = 4.0 * batch * T * QH * (prefix + tree_keys) * D

    dec = da.Ours(lib, b.sm_count, batch, prefix, QH, KVH, DT, nosplit=False)
    dq = torch.empty((batch, QH, D), dtype=DT, device="cuda").uniform_(-2, 2, generator=gen)
    do = torch.empty_like(dq)
    dl = torch.empty((batch, QH), dtype=torch.float32, device="cuda")
    mask = ancestor_mask(parents).to("cuda")
    try:
        # Correctness once: ours vs SDPA with the boolean mask on set 0 (batch 0).
        def contiguous(pool, rows_tree):  # [batch, kvh, prefix + T, d]
            pre = pool[indices.long()].view(batch, pages * PAGE, KVH, D)[:, :prefix]
            return torch.cat([pre, rows_tree.view(batch, T, KVH, D)], 1).transpose(1, 2).contiguous()

        full_mask = torch.cat([torch.ones(T, prefix, dtype=torch.bool, device="cuda"), mask], 1)
        # SDPA's contiguous K/V, one copy per rotated input set while they fit in 4 GiB (beyond
        # that one copy alone is far larger than L2, so reading it is never an L2 hit anyway)
        kc = contiguous(k_sets[0], kt)
        copies = sets if 2 * kc.numel() * kc.element_size() * sets <= 4 << 30 else 1
        kcs = [kc] + [contiguous(k_sets[s], kt) for s in range(1, copies)]
        vcs = [contiguous(v_sets[s], vt) for s in range(copies)]
        q4 = q.view(batch, T, QH, D).transpose(1, 2)

        def sdpa(i):
            return F.scaled_dot_product_attention(q4, kcs[i % copies], vcs[i % copies], attn_mask=full_mask,
                                                  enable_gqa=True)

        want = sdpa(0).transpose(1, 2).reshape(batch * T, QH, D).float()
        tol = harness.attention_tolerance(want)
        for impl in plans:
            o.fill_(float("nan"))
            ours(impl)(0)
            err = (o.float() - want).abs().max().item()
            if not err < tol:
                raise RuntimeError(f"{name}: {impl} differs from torch by {err:.3e} (tolerance {tol:.2e})")
        for impl in plans:
            b.time(impl, ours(impl), bytes=nbytes, flops=flops)
        b.time("spillway:decode1", lambda i: dec.launch(dq, k_sets[i % sets], v_sets[i % sets], indptr, indices,
                                                        last, do, dl), bytes=kv_bytes)

        def decode_t(i):
            for _ in range(T):
                dec.launch(dq, k_sets[i % sets], v_sets[i % sets], indptr, indices, last, do, dl)

        b.time("spillway:decodeT", decode_t, bytes=nbytes)
        b.time("torch_sdpa", sdpa, bytes=nbytes)
    finally:
        torch.cuda.synchronize()
        dec.close()
        for handle, _ in plans.values():
            lib.spw_tree_attention_destroy(handle)
    del k_sets, v_sets
    torch.cuda.empty_cache()


def main():
    b = harness.Bench("tree_attention", description=__doc__)
    lib = harness.load_spillway()
    setup_lib(lib)
    for batch, T, prefix in grid(b.quick):
        b.attempt(run_case, b, lib, batch, T, prefix)
    b.write()


if __name__ == "__main__":
    main()
