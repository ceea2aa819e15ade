"""ctest driver: the CPU backend's logits (`spillway logits`) against the independent NumPy
reference (llama_reference.py, which reads the GGUF with the `gguf` package) on one model.

    compare_reference.py SPILLWAY_EXE MODEL.gguf TOL ID...   (MODEL may be 'tiny:<type>[:qwen2]',
                                                              written into a temp dir first)
Prints "reference ok" when max |a - b| <= TOL * max(1, max |b|) and the argmax agrees."""
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

here = pathlib.Path(__file__).resolve().parent
exe, model, tol, ids = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
with tempfile.TemporaryDirectory() as d:
    if model.startswith("tiny:"):
        parts = model.split(":")
        model = str(pathlib.Path(d) / "tiny.gguf")
        cmd = [exe, "tinymodel", "--out", model, "--type", parts[1], "--seed", "7"]
        if parts[1].endswith("_k"):  # k-quant rows are whole 256-element super-blocks
            cmd += ["--hidden", "256", "--inter", "256"]
        if len(parts) > 2:
            cmd += ["--arch", parts[2], "--untied"]
        subprocess.run(cmd, check=True, capture_output=True)
    elif not pathlib.Path(model).exists():
        print(f"SKIP: {model} is absent (tools/fetch_model.sh fetches it)")
        sys.exit(0)
    ours = np.loadtxt(subprocess.run([exe, "logits", "--model", model, *ids], check=True, capture_output=True,
                                     text=True).stdout.splitlines())
    ref = np.loadtxt(subprocess.run([sys.executable, str(here / "llama_reference.py"), model, *ids], check=True,
                                    capture_output=True, text=True).stdout.splitlines())
err = np.abs(ours - ref).max()
limit = tol * max(1.0, np.abs(ref).max())
print(f"max |ours - ref| = {err:.3e} (limit {limit:.3e}), argmax {ours.argmax()} vs {ref.argmax()}")
assert ours.shape == ref.shape and err <= limit and ours.argmax() == ref.argmax()
print("reference ok")
