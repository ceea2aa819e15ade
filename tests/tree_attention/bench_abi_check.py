"""CPU check of bench/tree_attention.py's ctypes binding (ctest `tree_attention_bench_abi`):
imports the bench with stand-in torch/harness modules, plans every grid case through the real
libspillway_c with the bench's structs and argtypes (every impl the bench times, checking the
plan info), and calls run with a null q to check that
the argument list reaches the C++ checks. No launches.

    python3 tests/tree_attention/bench_abi_check.py <path to libspillway_c.so>"""
import ctypes
import pathlib
import random
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
from bench_stubs import check, import_bench  # noqa: E402,F401

bench, lib = import_bench("tree_attention", sys.argv[1])
cases = bench.grid(False) + bench.grid(True)
plans = 0
for batch, T, prefix in cases:
    parents = bench.random_parents(T, random.Random(T))
    for impl in bench.impls_for(T):
        h, ws = bench.plan_case(lib, 132, batch, T, prefix, parents, impl)
        assert ws > 0
        info = bench.plan_info(lib, h)
        want = {"spillway": 2, "spillway:v0": 1, "spillway:rows128": 2}[impl]
        assert info.impl == want and info.num_states >= 2, (impl, info.impl, info.num_states)
        if impl == "spillway:rows128":
            assert info.rows_per_cta <= 128, info.rows_per_cta
        st = lib.spw_tree_attention_run(h, None, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, ws, None)
        msg = lib.spw_last_error().decode()
        assert st == 1 and "q = null" in msg, (st, msg)
        lib.spw_tree_attention_destroy(h)
        plans += 1
print(f"tree_attention bench abi ok ({plans} plans)")
