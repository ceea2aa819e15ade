"""Imports a bench/<name>.py script on a machine without torch or a GPU, for the CPU checks of
its ctypes binding: stand-in `torch`/`harness` modules (only what the scripts touch at import
and planning time) and the real libspillway_c."""
import ctypes
import importlib
import pathlib
import sys
import types

ROOT = pathlib.Path(__file__).resolve().parents[2]


def check(lib, status, what):
    if status != 0:
        raise RuntimeError(f"{what} failed (status {status}): {lib.spw_last_error().decode()}")


def import_bench(name: str, lib_path: str):
    """Returns (bench module, lib) with bench.setup_lib(lib) already called."""
    sys.path.insert(0, str(ROOT / "bench"))
    torch = types.ModuleType("torch")
    torch.float16, torch.bfloat16, torch.float32 = "float16", "bfloat16", "float32"
    nn = types.ModuleType("torch.nn")
    functional = types.ModuleType("torch.nn.functional")
    torch.nn, nn.functional = nn, functional
    harness = types.ModuleType("harness")
    harness.check = check
    sys.modules.update({"torch": torch, "torch.nn": nn, "torch.nn.functional": functional, "harness": harness})
    bench = importlib.import_module(name)
    lib = ctypes.CDLL(lib_path)
    lib.spw_last_error.restype = ctypes.c_char_p
    bench.setup_lib(lib)
    return bench, lib
