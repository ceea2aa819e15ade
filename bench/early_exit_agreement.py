#!/usr/bin/env python3
"""How often a model's first L layers predict its own greedy next token: the ceiling of a
self-speculative drafter (`--draft self:L`), computed by the independent NumPy forward pass
(tests/runtime/llama_reference.py, which reads the GGUF with the `gguf` package), beside the
acceptance that `spillway generate --draft self:L` measures on the same prompts.

    python3 bench/early_exit_agreement.py [--spillway build/tools/spillway] [--model M]
        [--prompts bench/prompts/e2e_prompts.jsonl] [--limit N] [--max-tokens N]
        [--layers 4,8,...] [--no-measure] [--out DIR]

For each prompt: greedy autoregressive decoding with spillway (its token ids), then one NumPy
forward pass over prompt + output that keeps the residual stream after every layer; at every
generated position, the early exit's argmax (final norm + output head on layer L's stream) is
compared with the full model's. `agreement` is the share of positions where they match. The
measured column is `spillway generate --draft self:L --k 1 --draft-length fixed` (one drafted
token per step, so its acceptance is the first position's): it visits a subset of the positions
(those where a step starts), so the two agree in expectation, not exactly. Writes
early_exit_agreement.{json,md} into --out (default bench/results/<cpu slug>/).
"""
from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "runtime"))
import llama_reference as ref  # noqa: E402
from results_format import cpu_name, cpu_slug, default_exe, generate_json, measured_commit, short_commit  # noqa: E402


def prompt_ids(spillway: str, model: str, text: str) -> list[int]:
    """The chat-formatted prompt's token ids, as `spillway generate` feeds them."""
    out = subprocess.run([spillway, "tokenize", "--model", model, "--chat", "--text", text], check=True,
                         capture_output=True, text=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("ids: "))
    return json.loads(line[len("ids: "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spillway", default=default_exe())
    ap.add_argument("--model", default=str(ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--prompts", default=str(ROOT / "bench" / "prompts" / "e2e_prompts.jsonl"))
    ap.add_argument("--limit", type=int, default=0, help="first N prompts only (0: all)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--layers", default="")
    ap.add_argument("--no-measure", action="store_true", help="skip the spillway self:L runs")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    if not pathlib.Path(a.model).exists():
        sys.exit(f"{a.model}: not found (tools/fetch_model.sh fetches the default model)")

    prompts = [json.loads(l) for l in open(a.prompts) if l.strip()]
    if a.limit:
        prompts = prompts[:a.limit]
    tmp = tempfile.TemporaryDirectory(prefix="early_exit_")  # removed when main() returns
    subset = pathlib.Path(tmp.name) / "prompts.jsonl"
    subset.write_text("".join(json.dumps(p) + "\n" for p in prompts))

    cfg, tensors = ref.load(a.model)
    n_layers = cfg["layers"]
    layer_list = [int(x) for x in a.layers.split(",")] if a.layers else sorted(
        {max(1, n_layers * f // 8) for f in range(1, 8)} | {n_layers - 1})
    for L in layer_list:
        if not 1 <= L < n_layers:
            sys.exit(f"--layers: {L} is not in 1..{n_layers - 1}")

    ar = {r["id"]: r["output"] for r in generate_json(a.spillway, a.model, subset, a.max_tokens, ["--draft", "none"],
                                                      quiet=True)}
    agree = {L: 0 for L in layer_list}
    positions = 0
    same_prompts = 0  # prompts whose NumPy greedy tokens are spillway's, every one
    for i, p in enumerate(prompts):
        ids = prompt_ids(a.spillway, a.model, p["prompt"])
        out = ar[p["id"]]
        seq = ids + out[:-1]  # the stream at position j predicts token j + 1
        first = len(ids) - 1  # the position that predicts the first generated token
        streams = {}
        for depth, x in enumerate(ref.layers(cfg, tensors, seq), start=1):
            if depth in agree or depth == n_layers:
                streams[depth] = x[first:]
        full = ref.head(cfg, tensors, streams[n_layers]).argmax(-1)
        if np.array_equal(full, np.array(out)):
            same_prompts += 1
        else:
            print(f"  {p['id']}: the NumPy greedy tokens differ from spillway's at "
                  f"{int(np.argmax(full != np.array(out)))} of {len(out)} (near tie); compared with NumPy's own")
        for L in layer_list:
            agree[L] += int((ref.head(cfg, tensors, streams[L]).argmax(-1) == full).sum())
        positions += len(out)
        print(f"[{i + 1}/{len(prompts)}] {p['id']}: {len(out)} positions", flush=True)

    measured = {}
    if not a.no_measure:
        for L in layer_list:
            rows = generate_json(a.spillway, a.model, subset, a.max_tokens,
                                 ["--draft", f"self:{L}", "--k", "1", "--draft-length", "fixed"], quiet=True)
            drafted = sum(r["drafted"] for r in rows)
            accepted = sum(round(r["acceptance"] * r["drafted"]) for r in rows)
            measured[L] = {"drafted": drafted, "accepted": accepted, "acceptance": accepted / max(1, drafted)}

    commit = measured_commit(a.spillway)
    doc = {
        "name": "early_exit_agreement",
        "model": pathlib.Path(a.model).name, "layers_total": n_layers, "prompts": len(prompts),
        "max_tokens": a.max_tokens, "positions": positions, "numpy_greedy_equal_prompts": same_prompts,
        "commit": commit, "cpu": cpu_name(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "rows": [{"layers": L, "agreement": agree[L] / positions, **({"measured": measured[L]} if L in measured else {})}
                 for L in layer_list],
    }
    out_dir = pathlib.Path(a.out) if a.out else ROOT / "bench" / "results" / cpu_slug()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "early_exit_agreement.json").write_text(json.dumps(doc, indent=1) + "\n")
    lines = [f"# early_exit_agreement — {doc['model']} ({n_layers} layers)", "",
             f"commit `{short_commit(commit)}`, {doc['date']}, {len(prompts)} prompts of {a.prompts.split('/')[-1]}, "
             f"{a.max_tokens} greedy tokens each ({positions} positions). agreement: the first L layers' argmax "
             "(final norm + output head) equals the full model's, NumPy reference, float64. measured: "
             "`spillway generate --draft self:L --k 1 --draft-length fixed` acceptance.", "",
             f"The NumPy pass's own greedy tokens equal spillway's (CPU backend, fp32) on {same_prompts} of "
             f"{len(prompts)} prompts; where they part (a near tie) the agreement is counted against NumPy's.", "",
             "| L | agreement (NumPy) | measured acceptance (spillway) |", "|---:|---:|---:|"]
    for r in doc["rows"]:
        m = r.get("measured")
        lines.append(f"| {r['layers']} | {100 * r['agreement']:.1f}% | "
                     + (f"{100 * m['acceptance']:.1f}% ({m['accepted']}/{m['drafted']})" if m else "") + " |")
    (out_dir / "early_exit_agreement.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
