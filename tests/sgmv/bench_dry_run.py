"""Dry run of bench/sgmv.py on the CPU (ctest `sgmv_bench_dry_run`): a numpy-backed stand-in
torch, a fake harness, the real libspillway_c for planning (argument checks included) and
stubs for the launches that check argument counts against the real argtypes. Catches Python
mistakes in the bench before it reaches a GPU machine; timings are not measured.

    python3 tests/sgmv/bench_dry_run.py <path to libspillway_c.so> [--quick]"""
import ctypes
import pathlib
import sys
import types

try:
    import numpy as np
except ImportError:
    print("numpy not available: skipped")
    sys.exit(77)

ROOT = pathlib.Path(__file__).resolve().parents[2]
LIB = sys.argv[1]
sys.path.insert(0, str(ROOT / "bench"))

class T:
    def __init__(self, a): self.a = a
    def __mul__(self, o): return T(self.a * o)
    def to(self, dt): return T(self.a.astype(dt))
    def __getitem__(self, k):
        if isinstance(k, T): k = k.a
        if isinstance(k, tuple): k = tuple(x.a if isinstance(x, T) else x for x in k)
        return T(self.a[k])
    def zero_(self): self.a[...] = 0; return self
    def long(self): return T(self.a.astype(np.int64))
    def element_size(self): return self.a.itemsize
    def data_ptr(self): return self.a.__array_interface__['data'][0]
    def numel(self): return self.a.size
    def clone(self): return T(self.a.copy())
    def contiguous(self): return T(np.ascontiguousarray(self.a))
    def float(self): return T(self.a.astype(np.float32))
    def t(self): return T(self.a.T)
    def transpose(self, i, j): return T(np.swapaxes(self.a, i, j))
    def unsqueeze(self, d): return T(np.expand_dims(self.a, d))
    def squeeze(self, d): return T(np.squeeze(self.a, d))
    def __matmul__(self, o): return T(self.a @ o.a)
    def __add__(self, o): return T(self.a + o.a)
    def __sub__(self, o): return T(self.a - o.a)
    def __iadd__(self, o): self.a += o.a.astype(self.a.dtype); return self
    def abs(self): return T(np.abs(self.a))
    def max(self): return T(self.a.max())
    def item(self): return self.a.item()
    def copy_(self, o): self.a[...] = o.a; return self

torch = types.ModuleType("torch")
torch.float16, torch.float32, torch.int32, torch.int64, torch.uint8 = np.float16, np.float32, np.int32, np.int64, np.uint8
rng = np.random.default_rng(0)
torch.randn = lambda *s, device=None: T(rng.standard_normal(s).astype(np.float32))
torch.tensor = lambda v, dtype=np.int64, device=None: T(np.array(v, dtype=dtype))
torch.empty = lambda *s, dtype=np.float32, device=None: T(np.empty(s, dtype=dtype))
torch.zeros = lambda *s, dtype=np.float32, device=None: T(np.zeros(s, dtype=dtype))
torch.repeat_interleave = lambda x, r: T(np.repeat(x.a, r.a))
torch.bmm = lambda a, b: T(np.matmul(a.a, b.a))
torch.manual_seed = lambda s: None
cuda = types.ModuleType("torch.cuda"); cuda.synchronize = lambda: None; cuda.empty_cache = lambda: None
torch.cuda = cuda
sys.modules["torch"] = torch

harness = types.ModuleType("harness")
real = ctypes.CDLL(LIB); real.spw_last_error.restype = ctypes.c_char_p
def check(lib, st, what):
    if st != 0: raise RuntimeError(f"{what}: {real.spw_last_error().decode()}")
harness.check = check
harness.stream_ptr = lambda: 0
calls = {}
class Lib:
    def __getattr__(self, name):
        f = getattr(real, name)
        if name in ("spw_sgmv_plan_create", "spw_sgmv_plan_workspace_bytes", "spw_sgmv_plan_destroy", "spw_last_error"):
            return f
        class Stub:
            def __setattr__(self, k, v): setattr(f, k, v)
            def __call__(self, *args):
                # convert with the real argtypes, to catch count/type mistakes
                assert len(args) == len(f.argtypes), (name, len(args), len(f.argtypes))
                for a, t in zip(args, f.argtypes): t.from_param(a)
                calls[name] = calls.get(name, 0) + 1
                return 0
        return Stub()
class Bench:
    def __init__(self, name): self.quick = "--quick" in sys.argv; self.sm_count = 132; self.rows = 0
    def case(self, n, p):
        self.params = p; print("case", n, p); return True
    def rotation_count(self, b): return 2
    def time(self, impl, fn, bytes, flops=None):
        for i in range(3): fn(i)
        self.rows += 1
    def skip(self, impl, why): print("  skip", impl, why)
    def attempt(self, run_case, *args, **kwargs): run_case(*args, **kwargs)  # a failure fails the dry run
    def write(self): print("rows", self.rows, "calls", calls)
harness.Bench = lambda name: Bench(name)
harness.load_spillway = lambda: Lib()
sys.modules["harness"] = harness
import sgmv
sgmv.HIDDEN = 256   # keep numpy fast
def fake_run(lib, plan, ws, b):
    for i in range(len(b.lens)):
        s, e, a = b.starts[i], b.starts[i + 1], b.ids[i]
        r = b.ranks[a]
        b.y.a[s:e] = (b.y.a[s:e].astype(np.float32) + (b.x.a[s:e].astype(np.float32) @ b.A.a[a, :r].astype(np.float32).T) @ b.B.a[a, :r].astype(np.float32)).astype(np.float16)
real_run = sgmv.run_spillway
sgmv.run_spillway = fake_run
b = sgmv.Batch([1] * 5 + [7, 0, 3], list(range(8)), [8, 16, 64, 128] * 2, 128)
sgmv.verify(b, "probe", lambda: sgmv.run_spillway(None, None, None, b))
y0 = b.y.clone(); b.y.a[0, 0] += 1.0
try:
    sgmv.run_spillway = lambda *a: None
    sgmv.verify(b, "probe2", lambda: sgmv.run_spillway(None, None, None, b)); print("verify MISSED an error")
except RuntimeError as e: print("verify catches:", e)
sgmv.run_spillway = real_run
# The flat-GEMM-per-segment baseline's bookkeeping (B^T per adapter, v offsets, plans per shape,
# in-place residual) against the fp32 reference, with each flat GEMM call done by numpy.
class NumpyPlanned:
    made = []
    def __init__(self, lib, lt, m, n, k, dt, has_residual=0, sm_count=0):
        self.shape, self.res = (m, n, k), has_residual
        NumpyPlanned.made.append(self.shape + (has_residual,))
    def call(self, x, w, y, residual=None):
        m, n, k = self.shape
        assert x.a.size == m * k and w.a.shape == (n, k) and y.a.size == m * n, (self.shape, x.a.shape, w.a.shape)
        assert (residual is not None) == bool(self.res)
        out = x.a.reshape(m, k).astype(np.float32) @ w.a.astype(np.float32).T
        if self.res: out += residual.a.reshape(m, n).astype(np.float32)
        y.a.reshape(m, n)[...] = out.astype(y.a.dtype)
    def close(self): pass
real_planned = sgmv.flat_gemm.Planned
sgmv.flat_gemm.Planned = NumpyPlanned
loop = sgmv.FlatGemmLoop(None, None, b)
sgmv.verify(b, "flat_gemm_loop", loop.run, who="flat_gemm_loop")
assert len(loop.steps) == 7 and len(set(NumpyPlanned.made)) == len(NumpyPlanned.made), NumpyPlanned.made
try:  # shrinks only, no expand: verify must notice
    sgmv.verify(b, "flat_gemm_loop2", lambda: [st[0].call(*st[1:4]) for st in loop.steps], who="flat_gemm_loop")
    print("verify MISSED a baseline without its expand")
except RuntimeError as e: print("verify catches:", e)
sgmv.flat_gemm.Planned = real_planned
sgmv.verify = lambda *a, **k: None
sgmv.main()
print("sgmv bench dry run ok")
