"""runtime_step: latency of one target forward verifying k tokens per sequence after a context,
the cost curve speculative decoding relies on (issue 8), plus decode tokens/s at k = 1.

    python3 bench/runtime_step.py --cpu [--model M] [--contexts 128,512] [--reps 5]
    python3 bench/runtime_step.py [--gpu] [--quick]          # CUDA backend (default mode)

--cpu: Spillway's CPU backend on SmolLM2 (`spillway step`), results in
bench/results/cpu-<cpu model>/runtime_step.{json,md}.
--gpu: the CUDA backend on SmolLM2-135M (when models/ has it) and on a Llama-2-7B-shaped model
with random fp16 weights: k = 1..64 at context 512 and 4K, batch 1 and 8; then decode
tokens/s (k = 1) at batch 1, 8, 32 (context 512); the argmax curve (greedy verification) is
measured three times: with the backend's step graphs (default), with --cuda-graph-tokens 0, and in
the batch-invariant mode (--batch-invariant: what identical greedy output costs), and once more
with the top 8 of every row instead (--output topk: what a recycling drafter's verification
costs, rows `spillway:cuda:topk`). Results in
bench/results/<gpu name>/runtime_step.{json,md} (+ .png with bench/plot.py).

Rows (BENCH_FORMAT shape): `median_us` of one forward (wall clock: forward() returns with the
logits on the host), `tokens_per_s` = batch * k / median, and `gbs` = the weight bytes one
forward must read (on the CPU the GGUF-encoded bytes the backend holds, as `spillway step`
reports them; fp16/bf16 on the GPU; KV cache not counted) / median."""
import argparse
import datetime
import json
import os
import pathlib
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from results_format import (cpu_name, cpu_slug, default_exe, device_slug, gpu_name_driver, markdown_table,  # noqa: E402
                            measured_commit, run_until_stopped)

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
# Parameters read per forward (every weight once; tied embeddings read once as lm_head; the
# embedding gather is negligible): SmolLM2-135M and Llama-2-7B (untied, vocab 32000).
WEIGHT_PARAMS = {"SmolLM2-135M-Instruct.Q4_1": 134_515_008, "llama2-7b-random": 6_738_415_616 - 32000 * 4096}


def run_step(exe: str, args: list[str]) -> list[dict]:
    cmd = [exe, "step", *args]
    print("$", " ".join(cmd), flush=True)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:  # e.g. the binary is not built: recorded as a skip by the callers
        raise RuntimeError(f"cannot run {exe}: {e}") from e
    if proc.returncode != 0:
        print(proc.stderr.strip(), flush=True)
        raise RuntimeError(f"spillway step failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def to_row(r: dict, impl: str, bytes_per_param: int | None, threads: int | None = None,
           cuda_graphs: bool | None = None) -> dict:
    """bytes_per_param None: the weight bytes `spillway step` reported (CPU backend);
    cuda_graphs: recorded in params when given (CUDA backend: step graphs on or off);
    params.batch_invariant when the step ran in the CUDA backend's batch-invariant mode."""
    model = r["model"]
    output = r.get("output", "logits")
    case = f"{model}_b{r['batch']}_ctx{r['context']}_k{r['k']}" + ("" if output == "logits" else f"_{output}")
    secs = r["median_ms"] / 1000.0
    weight_bytes = (r.get("weight_bytes", 0) if bytes_per_param is None
                    else WEIGHT_PARAMS.get(model, 0) * bytes_per_param)
    params = {"model": model, "batch": r["batch"], "context": r["context"], "k": r["k"],
              "output": r.get("output", "logits")}
    if bytes_per_param is None:
        params["weight_bytes"] = weight_bytes
    if threads:
        params["threads"] = threads
    if cuda_graphs is not None:
        params["cuda_graphs"] = cuda_graphs
    if r.get("batch_invariant"):
        params["batch_invariant"] = True
    row = {"case": case, "impl": impl, "median_us": round(r["median_ms"] * 1000, 1),
           "tokens_per_s": r["tokens_per_s"], "gbs": round(weight_bytes / secs / 1e9, 1) if weight_bytes else 0.0,
           "pct_copy": 0.0, "params": params}
    print(f"  {case:<52} {r['median_ms']:9.3f} ms  {r['tokens_per_s']:10.1f} tok/s  {row['gbs']:7.1f} GB/s", flush=True)
    return row


def write(doc: dict, slug: str, out_root: str) -> None:
    out = pathlib.Path(out_root) / slug
    out.mkdir(parents=True, exist_ok=True)
    (out / "runtime_step.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "runtime_step.md").write_text(markdown_table(doc) + "\n" + doc["note"] + "\n")
    print(f"wrote {out / 'runtime_step.json'}")


def meta(exe: str, device: str, driver: str, rows: list, note: str, skipped: list | None = None) -> dict:
    commit = measured_commit(exe)
    doc = {"name": "runtime_step", "device": device, "driver": driver, "commit": commit or "unknown",
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "copy_bandwidth_gbs": 0.0, "rows": rows, "note": note}
    if skipped:
        doc["skipped"] = skipped
    return doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--cpu", action="store_true", help="CPU backend")
    mode.add_argument("--gpu", action="store_true", help="CUDA backend (default)")
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--contexts", default="")
    ap.add_argument("--ks", default="1,2,4,8,16,32,64")
    ap.add_argument("--reps", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="fewer k values and repetitions")
    ap.add_argument("--exe", default=default_exe())
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    a = ap.parse_args()
    ks = "1,4,16,64" if a.quick else a.ks

    if a.cpu:
        reps = a.reps or 5
        rows = [to_row(r, "spillway:cpu", None, os.cpu_count())
                for r in run_step(a.exe, ["--model", a.model, "--contexts", a.contexts or "128,512", "--ks", ks,
                                          "--reps", str(reps)])]
        slug = cpu_slug()
        write(meta(a.exe, f"{cpu_name()} ({os.cpu_count()} threads)", "none", rows,
                   f"median of {reps} forwards after one warm-up (wall clock); CPU backend, weights in their "
                   f"GGUF encoding, dequantised on the fly ({rows[0]['params']['threads']} threads); gbs = "
                   f"encoded weight bytes ({rows[0]['params'].get('weight_bytes', 0) / 1e6:.1f} MB) / time"), slug, a.out)
        return

    reps = a.reps or (5 if a.quick else 20)
    contexts = a.contexts or "512,4096"
    rows, skipped = [], []
    models = []
    if pathlib.Path(a.model).exists():
        models.append(("--model", a.model))
    else:
        skipped.append({"case": pathlib.Path(a.model).stem, "impl": "spillway:cuda",
                        "reason": f"{a.model} not present (tools/gpu/prepare_carry.sh carries it in two halves)"})
    models.append(("--random", "llama2-7b"))
    # A SIGTERM (tools/gpu/run_all.sh's time limit) ends the runs: the rows measured so far
    # (those of every finished `spillway step`) are written, marked incomplete.
    stopped = run_until_stopped(lambda: measure_gpu(a, models, contexts, ks, reps, rows, skipped))
    incomplete = None
    if stopped:
        incomplete = f"stopped by {stopped} (a time limit) after {len(rows)} rows; the rest were not measured"
        print(incomplete, flush=True)
    name, driver = gpu_name_driver()
    doc = meta(a.exe, name, driver, rows,
               f"median of {reps} forwards after one warm-up (wall clock incl. the logits copy to the host); "
               "CUDA backend, fp16 weights and KV cache; gbs = fp16 weight bytes / time (KV cache not counted)",
               skipped)
    if incomplete:
        doc["incomplete"] = incomplete
    write(doc, device_slug(name), a.out)
    if not rows or incomplete:
        sys.exit(1)


def measure_gpu(a, models, contexts, ks, reps, rows, skipped) -> None:
    """The CUDA backend's rows (appended to rows; a model that fails goes to skipped)."""
    for flag, value in models:
        try:
            base = [flag, value, "--backend", "cuda", "--reps", str(reps)]
            # greedy verification's cost curve first (what draft_replay --costs and the decoder's
            # cost policy use): forward_argmax (no logits rows leave the device)
            argmax = base + ["--contexts", "512", "--batch", "1", "--ks", ks, "--output", "argmax"]
            for r in run_step(a.exe, argmax):
                rows.append(to_row(r, "spillway:cuda:argmax", 2))
            # greedy verification for a recycling drafter: the top 8 of every row, ranked on the device
            for r in run_step(a.exe, argmax[:-1] + ["topk"]):
                rows.append(to_row(r, "spillway:cuda:topk", 2))
            for r in run_step(a.exe, base + ["--contexts", contexts, "--batch", "1,8", "--ks", ks]):
                rows.append(to_row(r, "spillway:cuda", 2))
            for r in run_step(a.exe, base + ["--contexts", "512", "--batch", "32", "--ks", "1"]):
                rows.append(to_row(r, "spillway:cuda", 2))
            # the same curve launched kernel by kernel (no CUDA graphs): what the step graphs save
            for r in run_step(a.exe, argmax + ["--cuda-graph-tokens", "0"]):
                rows.append(to_row(r, "spillway:cuda:argmax:no-graphs", 2, cuda_graphs=False))
            # and in batch-invariant mode (what identical greedy output costs; e2e --batch-invariant)
            for r in run_step(a.exe, argmax + ["--batch-invariant"]):
                rows.append(to_row(r, "spillway:cuda:argmax:invariant", 2))
        except RuntimeError as e:
            skipped.append({"case": value, "impl": "spillway:cuda", "reason": str(e)})


if __name__ == "__main__":
    main()
