"""The issues' goals checked against benchmark results (BENCH_FORMAT.md JSON files).

    python3 bench/goals.py bench/results/<device-slug> [...]

For each results folder, every goal whose benchmark file is there is printed as one line:
PASS / FAIL / n.a. (the file lacks the rows the goal needs, e.g. a --quick run or a baseline
that could not run), the goal, and the measured figure with the case it comes from. The
figures are same-run ratios, as the issues define them; an incomplete file (stopped by a time
limit) is judged on its rows and says so. Exit status 0 whatever the verdicts (this reports;
run_all.sh prints it last). Goals (issue numbers of the project):
  #4 decode_attention  >= 90% of copy bandwidth where batch x kv_heads fills the GPU (>= SMs);
                       >= 80% at batch 1, kv_len >= 32K; never slower than FlashInfer;
                       geomean >= 1.1x FlashInfer
  #5 flat_gemm         geomean >= 1.25x cuBLASLt for M <= 16; no M <= 64 below 0.97x;
                       >= 85% of copy bandwidth for M <= 8 where N*K >= 4096*11008
  #6 tree_attention    T=64 over a 4K prefix <= 1.15x one decode at that prefix (spillway:decode1);
                       >= 10x torch SDPA with mask at T=64, prefix 4K
  #7 sgmv              batch 64, rank 16, distinct: >= 60% of copy bandwidth, >= 5x gather_bmm,
                       >= 1.5x cublas_grouped; never slower than either on a decode case
  #9 e2e_decode        best cascade >= 2x autoregressive (identical greedy output) and >= 1.2x
                       the best single drafter, per mode
"""
from __future__ import annotations

import json
import math
import pathlib
import sys

DEFAULT_SMS = 132  # H100 SXM, when a results file does not say


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


class Report:
    def __init__(self):
        self.lines = []

    def goal(self, issue, text, ok, figure):
        """ok: True / False / None (n.a.); figure: what was measured (or why n.a.)."""
        verdict = "n.a." if ok is None else "PASS" if ok else "FAIL"
        self.lines.append(f"{verdict:<5} #{issue} {text}: {figure}")


def by_case(doc):
    """{case: {impl: row}}."""
    out = {}
    for r in doc.get("rows", []):
        out.setdefault(r["case"], {})[r["impl"]] = r
    return out


def ratios(cases, baseline, keep=lambda params: True):
    """[(baseline time / spillway time, case)] over the cases that have both impls."""
    out = []
    for case, impls in cases.items():
        if "spillway" in impls and baseline in impls and keep(impls["spillway"].get("params", {})):
            out.append((impls[baseline]["median_us"] / impls["spillway"]["median_us"], case))
    return out


def ours_pct(cases, keep):
    """[(spillway's % of copy bandwidth, case)] over the cases whose params pass keep()."""
    return [(c["spillway"]["pct_copy"], name) for name, c in cases.items()
            if "spillway" in c and keep(c["spillway"]["params"])]


def worst(pairs):
    return min(pairs) if pairs else None


def decode_attention(doc, rep):
    cases = by_case(doc)
    sms = doc.get("sm_count", DEFAULT_SMS)
    w = worst(ours_pct(cases, lambda p: p["batch"] * p["kv_heads"] >= sms))
    rep.goal(4, f">= 90% of copy bandwidth where batch x kv_heads >= {sms}",
             None if w is None else w[0] >= 90, "no such case" if w is None else f"lowest {w[0]}% ({w[1]})")
    w = worst(ours_pct(cases, lambda p: p["batch"] == 1 and p["kv_len"] >= 32768))
    rep.goal(4, ">= 80% of copy bandwidth at batch 1, kv_len >= 32K",
             None if w is None else w[0] >= 80, "no such case" if w is None else f"lowest {w[0]}% ({w[1]})")
    fi = ratios(cases, "flashinfer")
    w = worst(fi)
    rep.goal(4, "never slower than FlashInfer", None if w is None else w[0] >= 1.0,
             "FlashInfer not timed" if w is None else f"lowest {w[0]:.2f}x ({w[1]}), {len(fi)} cases")
    g = geomean([r for r, _ in fi])
    rep.goal(4, "geomean >= 1.1x FlashInfer", None if not fi else g >= 1.1,
             "FlashInfer not timed" if not fi else f"{g:.2f}x over {len(fi)} cases")


def flat_gemm(doc, rep):
    cases = by_case(doc)
    small = ratios(cases, "cublaslt", lambda p: p["m"] <= 16)
    g = geomean([r for r, _ in small])
    rep.goal(5, "geomean >= 1.25x cuBLASLt for M <= 16", None if not small else g >= 1.25,
             "cuBLASLt not timed" if not small else f"{g:.2f}x over {len(small)} cases")
    w = worst(ratios(cases, "cublaslt", lambda p: p["m"] <= 64))
    rep.goal(5, "no M <= 64 below 0.97x cuBLASLt", None if w is None else w[0] >= 0.97,
             "cuBLASLt not timed" if w is None else f"lowest {w[0]:.2f}x ({w[1]})")
    w = worst(ours_pct(cases, lambda p: p["m"] <= 8 and p["n"] * p["k"] >= 4096 * 11008))
    rep.goal(5, ">= 85% of copy bandwidth for M <= 8 on N*K >= 4096*11008",
             None if w is None else w[0] >= 85, "no such case" if w is None else f"lowest {w[0]}% ({w[1]})")


def tree_attention(doc, rep):
    cases = by_case(doc)
    at = {name: c for name, c in cases.items() if "spillway" in c
          and c["spillway"]["params"]["tree_tokens"] == 64 and c["spillway"]["params"]["prefix_len"] == 4096}
    vs_decode = [(c["spillway"]["median_us"] / c["spillway:decode1"]["median_us"], name)
                 for name, c in at.items() if "spillway:decode1" in c]
    w = max(vs_decode) if vs_decode else None
    rep.goal(6, "T=64, prefix 4K <= 1.15x one decode at that prefix", None if w is None else w[0] <= 1.15,
             "no such case" if w is None else f"highest {w[0]:.2f}x ({w[1]})")
    sdpa = [(c["torch_sdpa"]["median_us"] / c["spillway"]["median_us"], name)
            for name, c in at.items() if "torch_sdpa" in c]
    w = worst(sdpa)
    rep.goal(6, ">= 10x torch SDPA with mask at T=64, prefix 4K", None if w is None else w[0] >= 10,
             "no such case" if w is None else f"lowest {w[0]:.1f}x ({w[1]})")


def sgmv(doc, rep):
    cases = by_case(doc)
    key = "decode_distinct_s64_r16"
    c = cases.get(key, {})
    ours = c.get("spillway")
    rep.goal(7, f">= 60% of copy bandwidth on {key}", None if ours is None else ours["pct_copy"] >= 60,
             "not measured" if ours is None else f"{ours['pct_copy']}%")
    for base, need in (("gather_bmm", 5.0), ("cublas_grouped", 1.5)):
        r = c[base]["median_us"] / ours["median_us"] if ours and base in c else None
        rep.goal(7, f">= {need}x {base} on {key}", None if r is None else r >= need,
                 "not measured" if r is None else f"{r:.2f}x")
    for base in ("gather_bmm", "cublas_grouped"):
        w = worst([x for x in ratios(cases, base) if x[1].startswith("decode_")])
        rep.goal(7, f"never slower than {base} on a decode case", None if w is None else w[0] >= 1.0,
                 "not measured" if w is None else f"lowest {w[0]:.2f}x ({w[1]})")


def e2e_decode(doc, rep):
    """Cascades: vcascade / hcascade and Max-Gram with a bigram fill ('+bigram' or '+recycle', a
    two-level statistical cascade); single drafters: the rest but 'none' ('recycle' alone too)."""
    modes = sorted({r["params"]["mode"] for r in doc.get("rows", [])})
    if any(r["params"].get("backend") != "cuda" for r in doc.get("rows", [])):
        rep.lines.append("      (e2e_decode: not a CUDA-backend run; the issue sets its goal on the GPU)")
    for mode in modes:
        rows = [r for r in doc["rows"] if r["params"]["mode"] == mode and r["params"]["draft"] != "none"]
        parted = [r for r in rows if not r.get("identical_to_autoregressive", True)]
        if parted:  # greedy must be identical: say which rows were left out and how far they parted
            rep.lines.append(f"      ({mode}: {len(parted)} rows left out, output not identical to AR: " + ", ".join(
                f"{r['case']} ({r.get('prompts_identical', '?')}/{r['params'].get('prompts', '?')} prompts identical)"
                for r in parted) + ")")
        rows = [r for r in rows if r.get("identical_to_autoregressive", True)]
        if mode == "greedy" and rows and all(r["params"].get("batch_invariant") for r in rows):
            rep.lines.append("      (greedy: target in the CUDA backend's batch-invariant mode, AR base too)")
        cascade = [r for r in rows if "cascade" in r["params"]["draft"] or "+" in r["params"]["draft"]]
        single = [r for r in rows if r not in cascade]
        best_c = max(cascade, key=lambda r: r["speedup"], default=None)
        best_s = max(single, key=lambda r: r["speedup"], default=None)
        rep.goal(9, f"{mode}: best cascade >= 2x autoregressive", None if best_c is None else best_c["speedup"] >= 2,
                 "no cascade row" if best_c is None else f"{best_c['speedup']:.2f}x ({best_c['case']})")
        ok = None if best_c is None or best_s is None else best_c["speedup"] >= 1.2 * best_s["speedup"]
        rep.goal(9, f"{mode}: best cascade >= 1.2x the best single drafter", ok,
                 "no cascade or single-drafter row" if ok is None else
                 f"{best_c['speedup'] / best_s['speedup']:.2f}x ({best_c['case']} vs {best_s['case']})")


CHECKS = {"decode_attention": decode_attention, "flat_gemm": flat_gemm, "tree_attention": tree_attention,
          "sgmv": sgmv, "e2e_decode": e2e_decode}


def check_folder(folder: pathlib.Path) -> list[str]:
    rep = Report()
    for name, check in CHECKS.items():
        path = folder / f"{name}.json"
        if not path.exists():
            continue
        doc = json.loads(path.read_text())
        start = len(rep.lines)
        check(doc, rep)
        if doc.get("incomplete"):
            rep.lines.insert(start, f"      ({name}.json is incomplete: {doc['incomplete']})")
    return [f"goals, {folder.name}:"] + (rep.lines or ["  no results file with a goal"])


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    for folder in argv:
        print("\n".join(check_folder(pathlib.Path(folder))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
