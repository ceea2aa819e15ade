#!/usr/bin/env python3
"""Drafter sweep by replay: `draft_replay` (issue 9).

Greedy speculative decoding emits exactly the target's greedy text, so how many tokens each
target pass yields depends only on the drafter and on that text, not on the device. This script
records the target's greedy outputs for the prompt set ONCE (a real `spillway generate --draft
none` run on the chosen backend), then runs every drafting configuration with
`spillway generate --replay`, which answers for the target from the recording
(decode/replay_model.h): the same steps, passes and acceptance as with the model, while only the
drafters run. A sweep of dozens of configurations takes seconds instead of an hour.

Rows (BENCH_FORMAT shape, name `draft_replay`): `tokens_per_pass` (generated / target passes),
`nodes_per_pass` (tokens each verification pass carries: the pending token + the draft),
`acceptance`, `draft_us_per_pass` (drafter time per pass, measured: drafters run for real),
and, when --costs gives a cost curve t(n) of one target pass over n tokens (runtime_step
results), `est_speedup` = t(1) * tokens / (sum over passes of t(tokens in that pass)): what the
configuration would gain where a pass costs t(n) and drafting is free. No tokens/s of a target
is claimed.

    python3 bench/draft_replay.py [--spillway build/tools/spillway] [--model M] [--backend cpu|cuda]
                                  [--max-tokens N] [--reference REF.jsonl] [--configs FILE]
                                  [--costs runtime_step.json|auto] [--quick] [--out DIR]

--costs auto takes runtime_step.json from the output folder (the same device's results) when
it is there; --quick replays 6 prompts (2 per category) with 64 tokens (tools/gpu/run_all.sh).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from results_format import (backend_device, default_exe, generate_json, measured_commit, quick_prompt_set,  # noqa: E402
                            run_until_stopped, short_commit)

# (draft spec, tree width, k, draft length): chains and trees of the statistical drafters,
# the depth and width axes a GPU verification pass makes cheap.
DEFAULT_CONFIGS = [(spec, w, k, length)
                   for spec in ("maxgram", "maxgram+bigram")
                   for w in (1, 4, 16)
                   for k in (6, 12)
                   for length in ("adaptive", "fixed")]
# chains whose length, and trees whose nodes, follow the cost curve (--draft-length cost,
# decode/draft_length.h): run only with --costs, whose t(n) they are given
DEFAULT_CONFIGS += [(spec, w, k, "cost") for spec in ("maxgram", "maxgram+bigram") for w in (1, 4, 16) for k in (6, 12)]
MAX_TREE_NODES = 64  # GenerateParams::max_tree_nodes: a tree pass carries up to 65 tokens


def generate(args, extra: list[str], prompts: pathlib.Path) -> list[dict]:
    return generate_json(args.spillway, args.model, prompts, args.max_tokens, extra, args.backend, quiet=True)


def load_costs(path: str) -> dict[int, float]:
    """t(n) in µs from runtime_step results: batch 1, the first model, its smallest context, and
    the forwards that return greedy tokens (output argmax: what greedy verification runs) when
    that model has them, else its logits rows; rows measured with CUDA graphs off or in the
    batch-invariant mode are left out."""
    doc = json.loads(pathlib.Path(path).read_text())
    rows = [r for r in doc["rows"] if r.get("params", {}).get("batch") == 1 and "k" in r.get("params", {})
            and r["params"].get("cuda_graphs", True)  # the backend's default: step graphs on
            and not r["params"].get("batch_invariant", False)]
    if not rows:
        raise SystemExit(f"--costs {path}: no batch-1 rows with params.k")
    model = rows[0]["params"].get("model")
    rows = [r for r in rows if r["params"].get("model") == model]
    kinds = {r["params"].get("output", "logits") for r in rows}
    kind = "argmax" if "argmax" in kinds else "logits"
    same = [r for r in rows if r["params"].get("output", "logits") == kind]
    ctx = min(r["params"].get("context", 0) for r in same)
    return {int(r["params"]["k"]): float(r["median_us"]) for r in same if r["params"].get("context", 0) == ctx}


def cost_at(costs: dict[int, float], n: float) -> float:
    """Piecewise-linear t(n) over the measured k (clamped at the ends)."""
    ks = sorted(costs)
    if n <= ks[0]:
        return costs[ks[0]]
    for a, b in zip(ks, ks[1:]):
        if n <= b:
            return costs[a] + (costs[b] - costs[a]) * (n - a) / (b - a)
    return costs[ks[-1]]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spillway", default=default_exe())
    ap.add_argument("--model", default=str(ROOT / "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--backend", default="", help="backend that records the reference (default cpu)")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--prompts", default=str(ROOT / "bench/prompts/e2e_prompts.jsonl"))
    ap.add_argument("--reference", default="",
                    help="greedy --json output to replay (default: record it now, into the output folder)")
    ap.add_argument("--configs", default="",
                    help="JSON list of [spec, tree, k, 'adaptive'|'fixed'] (default: the built-in sweep)")
    ap.add_argument("--costs", default="",
                    help="runtime_step JSON (or 'auto': the output folder's): adds est_speedup from its t(k) curve")
    ap.add_argument("--quick", action="store_true", help="6 prompts, 64 tokens")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    prompts = pathlib.Path(args.prompts)
    if args.quick:
        args.max_tokens = min(args.max_tokens, 64)
        prompts = quick_prompt_set(prompts)
    configs = [tuple(c) for c in json.loads(pathlib.Path(args.configs).read_text())] if args.configs else DEFAULT_CONFIGS
    bigram = os.path.exists(args.model + ".bigram")
    skipped = [c for c in configs if "bigram" in c[0] and not bigram]
    configs = [c for c in configs if c not in skipped]
    if skipped:
        print(f"no {args.model}.bigram (spillway bigram build --from-model): skipping {len(skipped)} bigram rows")

    backend = args.backend or "cpu"
    device, driver, slug = backend_device(backend)
    out_dir = pathlib.Path(args.out) if args.out else ROOT / "bench/results" / slug
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = pathlib.Path(args.reference) if args.reference else out_dir / "draft_replay_reference.jsonl"
    rows: list[dict] = []
    costs: dict[int, float] = {}

    def replay():
        nonlocal configs, costs
        if not args.reference:
            rec = generate(args, ["--draft", "none"], prompts)
            with open(reference, "w") as f:
                for r in rec:
                    f.write(json.dumps({"id": r["id"], "tokens": r["tokens"], "output": r["output"]}) + "\n")
            print(f"recorded the {backend} backend's greedy outputs: {reference}")
        if args.costs == "auto":
            auto = out_dir / "runtime_step.json"
            args.costs = str(auto) if auto.exists() else ""
            print(f"--costs auto: {args.costs or 'no runtime_step.json in ' + str(out_dir) + ', no estimates'}")
        costs = load_costs(args.costs) if args.costs else {}
        if not costs and any(c[3] == "cost" for c in configs):
            print("no --costs: skipping the draft-length-by-cost rows (they need the t(n) curve)")
            configs = [c for c in configs if c[3] != "cost"]

        for spec, tree, k, length in configs:
            extra = []
            if length == "cost":  # the policy sees the same t(n) as the estimate below
                longest = 1 + (MAX_TREE_NODES if tree > 1 else k)
                extra = ["--cost-curve", ",".join(f"{cost_at(costs, n):.6g}" for n in range(1, longest + 1))]
            res = generate(args, ["--replay", str(reference), "--draft", spec, "--tree", str(tree), "--k", str(k),
                                  "--draft-length", length, *extra], prompts)
            tokens = sum(r["tokens"] for r in res)
            passes = sum(r["target_passes"] for r in res)
            drafted = sum(r["drafted"] for r in res)
            accepted = sum(r["accepted_per_step"] * r["target_passes"] for r in res)
            # drafting time: the replayed target costs nothing, so decode time is the drafters'
            draft_s = sum(r["tokens"] / r["tokens_per_s"] * r["draft_share"] for r in res if r["tokens_per_s"] > 0)
            name = f"{spec} tree={tree} k={k} {length}"
            row = {"case": name, "impl": f"spillway:{spec}",
                   "tokens_per_pass": round(tokens / passes, 4), "nodes_per_pass": round(1 + drafted / passes, 3),
                   "acceptance": round(accepted / drafted, 4) if drafted else 0.0,
                   "draft_us_per_pass": round(1e6 * draft_s / passes, 2),
                   "params": {"draft": spec, "tree": tree, "k": k, "draft_length": length, "max_tokens": args.max_tokens,
                              "prompts": len(res), "tokens": tokens}}
            if costs:
                # each pass priced at its own size where the output says how many tokens each carried
                # (passes_of[n]: passes of n tokens), else every pass at the mean size
                hist = [r.get("passes_of") for r in res]
                if all(hist):
                    modelled = sum(c * cost_at(costs, n) for h in hist for n, c in enumerate(h) if c)
                else:
                    modelled = passes * cost_at(costs, row["nodes_per_pass"])
                row["est_speedup"] = round(cost_at(costs, 1) * tokens / modelled, 3)
            rows.append(row)
            print(json.dumps(row), flush=True)

    # A SIGTERM (tools/gpu/run_all.sh's time limit) ends the runs: the rows replayed so far are
    # written, marked incomplete.
    stopped = run_until_stopped(replay)
    incomplete = None
    if stopped:
        incomplete = f"stopped by {stopped} (a time limit) after {len(rows)} of {len(configs)} rows"
        print(incomplete, flush=True)

    commit = measured_commit(args.spillway)
    doc = {"name": "draft_replay", "device": device, "driver": driver, "commit": commit,
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "copy_bandwidth_gbs": None, "model": os.path.basename(args.model), "reference_backend": backend,
           "costs": args.costs or None, "rows": rows}
    if incomplete:
        doc["incomplete"] = incomplete
    (out_dir / "draft_replay.json").write_text(json.dumps(doc, indent=1) + "\n")
    md = [f"# draft_replay — {device}", "",
          f"model {doc['model']}, greedy outputs recorded on the {backend} backend, commit `{short_commit(commit)}`, "
          f"{doc['date']}, up to {args.max_tokens} tokens per prompt, {rows[0]['params']['prompts'] if rows else 0} "
          "prompts. Every row replays the same greedy text (decode/replay_model.h): tokens per target pass and "
          "acceptance are exact and device-independent; drafting time is this machine's.", "",
          "| draft | tree | k | length | tokens/pass | nodes/pass | acceptance | draft µs/pass |"
          + (" est. speedup |" if costs else ""),
          "|---|---:|---:|---|---:|---:|---:|---:|" + ("---:|" if costs else "")]
    for r in rows:
        p = r["params"]
        md.append(f"| `{p['draft']}` | {p['tree']} | {p['k']} | {p['draft_length']} | {r['tokens_per_pass']:.3f} | "
                  f"{r['nodes_per_pass']:.2f} | {r['acceptance']:.1%} | {r['draft_us_per_pass']:.1f} |"
                  + (f" {r['est_speedup']:.2f}x |" if costs else ""))
    if incomplete:
        md += ["", f"**Incomplete:** {incomplete}."]
    (out_dir / "draft_replay.md").write_text("\n".join(md) + "\n")
    print(f"wrote {out_dir}/draft_replay.json and .md")
    return 1 if incomplete else 0


if __name__ == "__main__":
    sys.exit(main())
