"""runtime_step: latency of one target forward verifying k tokens after a context, the cost
curve speculative decoding relies on.

    python3 bench/runtime_step.py --cpu [--model M] [--contexts 128,512] [--reps 5]

--cpu times Spillway's CPU backend (`spillway step`) and writes
bench/results/cpu-<model>/runtime_step.{json,md} in the BENCH_FORMAT shape (rows with
`median_us` and `tokens_per_s`; `gbs` is the fp32 weight bytes read once per forward divided
by the time). The GPU half of this benchmark needs the CUDA backend, which does not exist yet."""
import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from results_format import markdown_table  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", required=True)
    ap.add_argument("--model", default=str(ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--contexts", default="128,512")
    ap.add_argument("--ks", default="1,2,4,8,16,32,64")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--exe", default=str(ROOT / "build" / "tools" / "spillway"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    a = ap.parse_args()
    proc = subprocess.run([a.exe, "step", "--model", a.model, "--contexts", a.contexts, "--ks", a.ks,
                           "--reps", str(a.reps)], check=True, capture_output=True, text=True)
    model = pathlib.Path(a.model).name.removesuffix(".gguf")
    weight_bytes = None
    rows = []
    for line in proc.stdout.splitlines():
        r = json.loads(line)
        case = f"{model}_ctx{r['context']}_k{r['k']}"
        row = {"case": case, "impl": "spillway:cpu", "median_us": round(r["median_ms"] * 1000, 1),
               "tokens_per_s": r["tokens_per_s"], "gbs": 0.0, "pct_copy": 0.0,
               "params": {"model": model, "context": r["context"], "k": r["k"], "threads": os.cpu_count()}}
        rows.append(row)
        print(f"  {case:<48} {r['median_ms']:9.2f} ms  {r['tokens_per_s']:8.1f} tok/s", flush=True)
    slug = "cpu-" + "-".join(cpu_name().lower().replace("(r)", "").replace("(tm)", "").split())[:60]
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    doc = {"name": "runtime_step", "device": f"{cpu_name()} ({os.cpu_count()} threads)", "driver": "none",
           "commit": commit or "unknown",
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "copy_bandwidth_gbs": 0.0, "rows": rows,
           "note": f"median of {a.reps} forwards after one warm-up; CPU backend, fp32 weights"}
    out = pathlib.Path(a.out) / slug
    out.mkdir(parents=True, exist_ok=True)
    (out / "runtime_step.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "runtime_step.md").write_text(markdown_table(doc))
    print(f"wrote {out / 'runtime_step.json'}")
    del weight_bytes


if __name__ == "__main__":
    main()
