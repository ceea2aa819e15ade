#!/usr/bin/env python3
"""End-to-end decode benchmark `e2e_decode` (issues 9 and 11).

Runs `spillway generate --prompts bench/prompts/e2e_prompts.jsonl --json ...` for each drafting
configuration (autoregressive, single drafters, vertical cascade, horizontal cascade, both; with
and without the bigram bottom), greedy and sampled, and writes
bench/results/<device-slug>/e2e_decode.json + .md in the BENCH_FORMAT.md shape with
`tokens_per_s`, `speedup` (vs autoregressive in the same run and mode), `accepted_per_step`,
plus acceptance of Max-Gram- and bigram-proposed positions separately.

    python3 bench/e2e_decode.py [--spillway build/tools/spillway] [--model M]
                                [--backend cpu|cuda] [--quick] [--max-tokens N] [--self-layers L]
                                [--k K] [--draft-length adaptive|fixed]
                                [--modes greedy,sampled] [--only 'LABEL|LABEL|...'] [--rounds N]
                                [--batch-invariant]
Greedy rows also record whether every prompt's output was identical to autoregressive decoding
(`identical_to_autoregressive`) and for how many prompts it was in every round
(`prompts_identical`; a backend whose verification pass rounds differently from a one-token
pass can part at a near tie, and the table's last column shows the count).
--only keeps the rows whose label (the draft spec, plus " tree=4" for the tree rows and " cost"
for the rows whose draft length follows the cost curve, " grow" for cost rows whose trees also
grow from the drafter's table: --tree-grow) is in the
'|'-separated list (autoregressive `none` always runs: it is every speedup's base); with
--modes it fits a run into a limited time (a full CPU run of every row takes over an hour).
--batch-invariant runs the target in the CUDA backend's batch-invariant mode (every row, the
autoregressive base too): a token's logits do not depend on how many tokens its pass carries, so
greedy speculative output is identical to autoregressive by construction; runtime_step's
`spillway:cuda:argmax:invariant` curve gives the mode's own cost.
--rounds N runs every row N times, interleaved (autoregressive first in each round), and reports
the median tok/s and the median (min-max) of the per-round speedups: on a machine whose speed
drifts, one sequential pass can put the rows it compares minutes apart.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import statistics
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from results_format import (backend_device, default_exe, generate_json, measured_commit, quick_prompt_set,  # noqa: E402
                            run_until_stopped, short_commit)


def configs(layers: int, bigram: bool) -> list[tuple]:
    """(draft spec, tree width, k, draft length) of every row: width 1 = chain drafts, > 1 = token
    trees; k / draft length None = the run's --k / --draft-length."""
    mg = "maxgram+bigram" if bigram else "maxgram"
    out = ["none", "maxgram"]
    if bigram:
        out += ["maxgram+bigram", "bigram"]
    out += [f"self:{layers}",
            f"vcascade(self:{layers},maxgram;lenience=2)",
            f"hcascade(self:{layers}*2,maxgram*4)",
            f"hcascade(vcascade(self:{layers},maxgram;lenience=2)*3,maxgram*3)"]
    if bigram:
        out += [f"vcascade(self:{layers},{mg};lenience=2)",
                f"hcascade(vcascade(self:{layers},{mg};lenience=2)*3,{mg}*3)"]
    rows = [(spec, 1, None, None) for spec in out]
    # Chains whose length follows this device's cost curve (--draft-length cost: measured by the
    # CLI at start), next to the adaptive rows above.
    rows += [("maxgram", 1, None, "cost")] + ([(mg, 1, None, "cost")] if bigram else [])
    # Token trees (up to 4 branches): more tokens per pass for a wider verification pass, which
    # pays where a pass costs about the same for 1 and 30 tokens (the GPU). The wide row is the
    # best of bench/draft_replay.py's sweep (16 branches, 12 deep, fixed: ~50 tokens per pass);
    # the same tree pruned each step to the nodes that pay on this device's cost curve follows.
    rows += [("maxgram", 4, None, None)] + ([(mg, 4, None, None), (mg, 16, 12, "fixed")] if bigram else [])
    rows += [(mg, 16, 12, "cost")]
    # The same wide trees from Max-Gram alone: #9 compares the best cascade with the best single
    # drafter, which in replays on flat cost curves is this tree (bench/draft_replay.py), so the
    # single-drafter side must have it too, or the ratio flatters the cascade.
    if bigram:
        rows += [("maxgram", 16, 12, "fixed"), ("maxgram", 16, 12, "cost")]
        # Token Recycling: the table refreshed by the target's top-8 of every row it computes.
        # Its trees with Max-Gram (a two-level statistical cascade), and alone (a single drafter:
        # the comparison must have it); chains gain nothing from it (1.68 vs 1.67 tokens/pass on
        # the CPU), so one chain row only.
        rows += [("maxgram+recycle", 16, 12, "cost"), ("recycle", 16, 12, "cost"), ("recycle", 1, None, None)]
        # The same trees grown best-first from the recycled table below every node before the
        # pruning (length "grow": --draft-length cost --tree-grow), both sides of the ratio.
        rows += [("maxgram+recycle", 16, 12, "grow"), ("recycle", 16, 12, "grow")]
    # Run order: autoregressive first (every speedup's base), then the rows #9's goals are most
    # likely decided by (wide trees and cost-length chains of the statistical drafters), then the
    # rest, so that a run stopped by a time limit has measured those first.
    first = [r for r in rows if r[3] in ("cost", "grow") or r[1] == 16]
    return rows[:1] + first + [r for r in rows[1:] if r not in first]


def label(spec: str, tree: int, k=None, length=None) -> str:
    name = spec if tree == 1 else f"{spec} tree={tree}"
    return name + (f" k={k}" if k else "") + (f" {length}" if length else "")


def run(args, spec: str, tree: int, temperature: float, prompts: pathlib.Path, k=None, length=None) -> list[dict]:
    # length "grow": by cost, the tree grown from the drafter's table first (--tree-grow)
    return generate_json(args.spillway, args.model, prompts, args.max_tokens,
                         ["--draft", spec, "--k", str(k or args.k), "--temperature", str(temperature), "--seed", "1",
                          "--draft-length", "cost" if length == "grow" else length or args.draft_length,
                          "--tree", str(tree)]
                         + (["--tree-grow"] if length == "grow" else [])
                         + (["--batch-invariant"] if args.batch_invariant else []), args.backend)


def tokens_per_s(res: list[dict]) -> float:
    """Over a whole prompt set: total tokens / total decode time."""
    tokens = sum(r["tokens"] for r in res)
    secs = sum(r["tokens"] / r["tokens_per_s"] for r in res if r["tokens_per_s"] > 0)
    return tokens / secs if secs else 0.0


def plot(json_path: pathlib.Path) -> None:
    """e2e_decode.png next to the results: speedup over autoregressive per configuration, one
    panel per mode (greedy, sampled); skipped without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plot")
        return
    doc = json.loads(json_path.read_text())
    modes = ["greedy", "sampled"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.35 * len(doc["rows"]) / 2 + 1.5), sharey=True, squeeze=False)
    for ax, mode in zip(axes[0], modes):
        rows = [r for r in doc["rows"] if r["params"]["mode"] == mode]
        names = [r["params"]["draft"] for r in rows]
        ax.barh(range(len(rows)), [r["speedup"] or 0 for r in rows], color="tab:blue")
        ax.axvline(1.0, color="gray", linestyle="--")
        for i, r in enumerate(rows):
            ax.text((r["speedup"] or 0) + 0.01, i, f"{r['speedup']:.2f}x, {r['accepted_per_step'] + 1:.2f} tok/pass",
                    va="center", fontsize=7)
        ax.set_yticks(range(len(rows)), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("speedup over autoregressive (tokens/s)")
        ax.set_title(mode)
    fig.suptitle(f"e2e_decode — {doc['device']} ({doc['date'][:10]}, {doc.get('model', '')})")
    fig.tight_layout()
    out = json_path.with_suffix(".png")
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def mode_rows(args, mode: str, rows_to_run: list[tuple], runs: dict, backend: str) -> list[dict]:
    """The result rows of one mode from the runs made so far (each row: its completed rounds)."""
    base_runs = runs[rows_to_run[0]]  # "none" is always the first row
    if not base_runs:
        return []
    base_tps = [tokens_per_s(res) for res in base_runs]
    base_tokens = {r["id"]: r["output_hash"] for r in base_runs[0]}
    out = []
    for row_cfg in rows_to_run:
        if not runs[row_cfg]:
            continue
        spec, tree, row_k, row_length = row_cfg
        name = label(spec, tree, row_k, row_length)
        res = runs[row_cfg][0]  # counts (passes, acceptance, outputs) from the first round
        tps_rounds = [tokens_per_s(x) for x in runs[row_cfg]]
        speedups = [t / b for t, b in zip(tps_rounds, base_tps) if b > 0]
        passes = sum(r["target_passes"] for r in res)
        accepted = sum(r["accepted_per_step"] * r["target_passes"] for r in res)
        src: dict[str, list[int]] = {}
        for r in res:
            for k, (p, a) in r["by_source"].items():
                s = src.setdefault(k, [0, 0])
                s[0] += p
                s[1] += a
        identical = same_prompts = None
        if mode == "greedy" and spec != "none":
            parted = {r["id"] for x in runs[row_cfg] for r in x if base_tokens.get(r["id"]) != r["output_hash"]}
            same_prompts = sum(1 for r in res if r["id"] not in parted)
            identical = not parted
        row = {"case": f"{mode}_{name}", "impl": "spillway" if spec == "none" else f"spillway:{name}",
               "tokens_per_s": round(statistics.median(tps_rounds), 3),
               "speedup": round(statistics.median(speedups), 4) if speedups else None,
               "accepted_per_step": round(accepted / passes, 4) if passes else 0.0,
               "swi": round(sum(r["swi"] for r in res) / len(res), 4),
               "acceptance_by_drafter": {k: round(a / p, 4) if p else 0.0 for k, (p, a) in src.items()},
               "params": {"mode": mode, "draft": name, "tree": tree, "backend": backend, "max_tokens": args.max_tokens,
                          "k": row_k or args.k,
                          "draft_length": "cost" if row_length == "grow" else row_length or args.draft_length,
                          "tree_grow": row_length == "grow", "prompts": len(res),
                          "rounds": len(runs[row_cfg]), "batch_invariant": args.batch_invariant}}
        if len(runs[row_cfg]) > 1 and speedups:
            row["speedup_min"], row["speedup_max"] = round(min(speedups), 4), round(max(speedups), 4)
        if identical is not None:
            row["identical_to_autoregressive"] = identical
            row["prompts_identical"] = same_prompts
        out.append(row)
        print(json.dumps(row), flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spillway", default=default_exe())
    ap.add_argument("--model", default=str(ROOT / "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--backend", default="")
    ap.add_argument("--quick", action="store_true", help="6 prompts, 64 tokens")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--k", type=int, default=6)
    ap.add_argument("--self-layers", type=int, default=8)
    ap.add_argument("--draft-length", choices=("adaptive", "fixed"), default="adaptive")
    ap.add_argument("--batch-invariant", action="store_true",
                    help="CUDA backend's batch-invariant mode for the target (spillway generate --batch-invariant)")
    ap.add_argument("--out", default="")
    ap.add_argument("--plot", default="", help="only redraw the plot of this results file")
    ap.add_argument("--modes", default="greedy,sampled", help="comma-separated: greedy, sampled")
    ap.add_argument("--only", default="", help="'|'-separated row labels to run (none always runs)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run every row this many times, interleaved; median tok/s and per-round speedup")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error(f"--rounds {args.rounds}: must be >= 1")
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in ("greedy", "sampled")]
    if unknown or not modes:
        ap.error(f"--modes {args.modes!r}: must be greedy and/or sampled")
    if args.plot:
        plot(pathlib.Path(args.plot))
        return 0

    prompts = ROOT / "bench/prompts/e2e_prompts.jsonl"
    if args.quick:
        args.max_tokens = min(args.max_tokens, 64)
        prompts = quick_prompt_set(prompts)
    bigram = os.path.exists(args.model + ".bigram")
    backend = args.backend or "default"
    rows, table = [], []
    rows_to_run = configs(args.self_layers, bigram)
    if args.only:
        wanted = set(args.only.split("|"))
        known = {label(*row) for row in rows_to_run}
        if wanted - known:
            ap.error(f"--only: no such rows {sorted(wanted - known)}; rows: {sorted(known)}")
        rows_to_run = [row for row in rows_to_run if row[0] == "none" or label(*row) in wanted]
    # Every round runs every row once, autoregressive first; a row's speedup is the median over
    # rounds of its tokens/s over the same round's autoregressive tokens/s, so a machine whose
    # speed drifts (a shared CPU) compares rows measured close together. A row whose run fails
    # is recorded as skipped with the reason (the others still run); a SIGTERM (a time limit)
    # stops the runs and the rows measured so far are written, marked incomplete.
    runs_by_mode: dict[str, dict[tuple, list[list[dict]]]] = {}
    skipped: list[dict] = []
    total, done = len(modes) * args.rounds * len(rows_to_run), 0

    def measure():
        nonlocal done
        for mode, temp in (("greedy", 0.0), ("sampled", 0.7)):
            if mode not in modes:
                continue
            runs = runs_by_mode[mode] = {row: [] for row in rows_to_run}
            failed: set[tuple] = set()
            for rnd in range(args.rounds):
                if args.rounds > 1:
                    print(f"{mode}: round {rnd + 1} of {args.rounds}", flush=True)
                for row_cfg in rows_to_run:
                    if row_cfg in failed:
                        continue
                    spec, tree, row_k, row_length = row_cfg
                    try:
                        runs[row_cfg].append(run(args, spec, tree, temp, prompts, row_k, row_length))
                    except subprocess.CalledProcessError as e:
                        failed.add(row_cfg)
                        skipped.append({"case": f"{mode}_{label(*row_cfg)}", "impl": "spillway",
                                        "reason": f"spillway generate exited with {e.returncode}"})
                        print(f"row failed: {skipped[-1]}", flush=True)
                    done += 1

    stopped = run_until_stopped(measure)
    incomplete = None
    if stopped:
        incomplete = f"stopped by {stopped} (a time limit) after {done} of {total} runs; rows not yet run are missing"
        print(incomplete, flush=True)
    for mode in ("greedy", "sampled"):
        if mode in runs_by_mode:
            rows += mode_rows(args, mode, rows_to_run, runs_by_mode[mode], backend)
    table = rows

    device, driver, slug = backend_device(backend)
    commit = measured_commit(args.spillway)
    doc = {"name": "e2e_decode", "device": device, "driver": driver, "commit": commit,
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "copy_bandwidth_gbs": None, "model": os.path.basename(args.model), "rows": rows}
    if incomplete:
        doc["incomplete"] = incomplete
    if skipped:
        doc["skipped"] = skipped
    out_dir = pathlib.Path(args.out) if args.out else ROOT / "bench/results" / slug
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "e2e_decode.json").write_text(json.dumps(doc, indent=1) + "\n")
    md = [f"# e2e_decode — {device}", "", f"model {doc['model']}, commit `{short_commit(commit)}`, {doc['date']}, "
          f"{args.max_tokens} tokens per prompt, k = {args.k} ({args.draft_length} draft length) unless the row says otherwise"
          + (", target in the CUDA backend's batch-invariant mode" if args.batch_invariant else "") +
          ". speedup = tokens/s over autoregressive "
          "in the same mode and run" + (f"; {args.rounds} interleaved rounds: tok/s is the median over rounds, speedup the "
                                       "median of the per-round speedups (min-max in brackets)" if args.rounds > 1 else "") + ".", "",
          "| mode | draft | tok/s | speedup | accepted/step | SWI | acceptance by drafter | identical to AR |",
          "|---|---|---:|---:|---:|---:|---|---:|"]
    for r in table:
        acc = ", ".join(f"{k} {v:.0%}" for k, v in r["acceptance_by_drafter"].items())
        spread = f" ({r['speedup_min']:.2f}-{r['speedup_max']:.2f})" if "speedup_min" in r else ""
        same = f"{r['prompts_identical']}/{r['params']['prompts']}" if "prompts_identical" in r else ""
        md.append(f"| {r['params']['mode']} | `{r['params']['draft']}` | {r['tokens_per_s']:.2f} | "
                  f"{r['speedup']:.2f}x{spread} | {r['accepted_per_step']:.2f} | {r['swi']:.2f} | {acc} | {same} |")
    if skipped:
        md += ["", "Not measured: " + "; ".join(f"{x['case']} ({x['reason']})" for x in skipped) + "."]
    if incomplete:
        md += ["", f"**Incomplete:** {incomplete}."]
    (out_dir / "e2e_decode.md").write_text("\n".join(md) + "\n")
    print(f"wrote {out_dir}/e2e_decode.json and .md")
    if rows:
        plot(out_dir / "e2e_decode.json")
    return 1 if incomplete or skipped else 0


if __name__ == "__main__":
    sys.exit(main())
