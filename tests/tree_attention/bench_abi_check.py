"""CPU check of bench/tree_attention.py's ctypes binding (ctest `tree_attention_bench_abi`):
imports the bench with stand-in torch/harness modules, plans every grid case through the real
libspillway_c with the bench's struct and argtypes, and calls run with a null q to check that
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
for batch, T, prefix in cases:
    parents = bench.random_parents(T, random.Random(T))
    h, ws = bench.plan_case(lib, 132, batch, T, prefix, parents)
    assert ws > 0
    st = lib.spw_tree_attention_run(h, None, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, ws, None)
    msg = lib.spw_last_error().decode()
    assert st == 1 and "q = null" in msg, (st, msg)
    lib.spw_tree_attention_destroy(h)
print(f"tree_attention bench abi ok ({len(cases)} plans)")
