#!/usr/bin/env python3
"""Tokens per unit of target cost of `spillway generate --json` runs on model cost curves.

Greedy tokens per pass do not depend on the backend, so a run on the CPU also says what a
configuration would gain where a verification pass of n tokens costs t(n) = 1 + s (n - 1) of a
one-token pass (a model of a GPU's nearly flat curve, not a measurement; drafting and host time
are left out). Each pass is priced at its own size (`passes_of[n]`: passes that carried n
tokens), so the figure is tokens / sum over passes of t(n): the speedup over autoregressive
decoding (one token per t(1) = 1) on that curve.

    python3 bench/tokens_per_cost.py RUN.jsonl [RUN2.jsonl ...] [--slopes 0.003,0.01]
"""
from __future__ import annotations

import argparse
import json
import pathlib


def summary(path: pathlib.Path, slopes: list[float]) -> dict:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows or any("passes_of" not in r for r in rows):
        raise SystemExit(f"{path}: not a `spillway generate --json` output with passes_of")
    tokens = sum(r["tokens"] for r in rows)
    passes = sum(r["target_passes"] for r in rows)
    carried = sum(n * c for r in rows for n, c in enumerate(r["passes_of"]))
    out = {"run": path.name, "prompts": len(rows), "tokens": tokens, "passes": passes,
           "tokens_per_pass": tokens / passes if passes else 0.0, "nodes_per_pass": carried / passes - 1 if passes else 0.0}
    for s in slopes:
        cost = sum(c * (1 + s * (n - 1)) for r in rows for n, c in enumerate(r["passes_of"]))
        out[f"s={s:g}"] = tokens / cost if cost else 0.0
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=pathlib.Path)
    ap.add_argument("--slopes", default="0.003,0.01", help="comma-separated s of t(n) = 1 + s (n - 1)")
    args = ap.parse_args()
    slopes = [float(x) for x in args.slopes.split(",")]
    print("| run | prompts | tokens | passes | tokens/pass | drafted/pass | " +
          " | ".join(f"s = {s:g}" for s in slopes) + " |")
    print("|---|---:|---:|---:|---:|---:|" + "---:|" * len(slopes))
    for p in args.runs:
        r = summary(p, slopes)
        print(f"| {r['run']} | {r['prompts']} | {r['tokens']} | {r['passes']} | {r['tokens_per_pass']:.3f} | "
              f"{r['nodes_per_pass']:.1f} | " + " | ".join(f"{r[f's={s:g}']:.3f}x" for s in slopes) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
