"""CPU check of bench/decode_attention.py's ctypes binding (ctest `decode_attention_bench_abi`):
imports the bench with stand-in torch/harness modules, then plans every grid case through the
real libspillway_c with the bench's Problem struct and argtypes, and calls run with a null q to
check that the argument list reaches the C++ checks. Timings and launches are not exercised.

    python3 tests/decode_attention/bench_abi_check.py <path to libspillway_c.so>"""
import ctypes
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
from bench_stubs import check, import_bench  # noqa: E402,F401

bench, lib = import_bench("decode_attention", sys.argv[1])
cases = bench.grid(False) + bench.grid(True)
for batch, kv_len, qh, kvh, dtype in cases:
    for nosplit, fixed in ((0, 0), (1, 0), (0, 256)):
        p = bench.Problem(batch, qh, kvh, bench.HEAD_DIM, bench.SPW[dtype], 0, bench.PAGE, 0, 0.0, 0.0, nosplit, fixed)
        lens = (ctypes.c_int32 * batch)(*([kv_len] * batch))
        h = ctypes.c_void_p()
        check(lib, lib.spw_decode_attention_plan(ctypes.byref(p), lens, 132, ctypes.byref(h)), "plan")
        ws = ctypes.c_size_t()
        check(lib, lib.spw_decode_attention_workspace_size(h, ctypes.byref(ws)), "workspace_size")
        assert ws.value > 0
        st = lib.spw_decode_attention_run(h, None, 16, 16, 16, 16, 16, 16, 16, 16, ws.value, None)
        msg = lib.spw_last_error().decode()
        assert st == 1 and "q = null" in msg, (st, msg)
        lib.spw_decode_attention_destroy(h)
# the C struct's last field reaches the planner: a fixed chunk that is not a multiple of 64 is refused
p = bench.Problem(1, 32, 8, bench.HEAD_DIM, 0, 0, bench.PAGE, 0, 0.0, 0.0, 0, 100)
lens = (ctypes.c_int32 * 1)(4096)
h = ctypes.c_void_p()
assert lib.spw_decode_attention_plan(ctypes.byref(p), lens, 132, ctypes.byref(h)) != 0
assert "fixed_chunk_tokens = 100" in lib.spw_last_error().decode(), lib.spw_last_error()
print(f"decode_attention bench abi ok ({len(cases) * 3} plans)")
