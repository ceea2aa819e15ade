"""Turns a results file (BENCH_FORMAT.md JSON) into a PNG next to it.

    python3 bench/plot.py bench/results/<device>/<name>.json [--x PARAM] [--y gbs|median_us|tflops|pct_copy]
                          [--facet PARAM] [--logx]

Default: x = the first numeric parameter that varies, y = gbs, one line per impl, one panel per
value of --facet (default: the second varying parameter, if any). Rows whose other parameters
differ are drawn as separate lines ("impl, p=v")."""
import argparse
import json
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def varying(rows, key_filter=lambda k, v: True):
    keys = {}
    for r in rows:
        for k, v in r.get("params", {}).items():
            keys.setdefault(k, set()).add(v)
    return [k for k, vs in keys.items() if len(vs) > 1 and key_filter(k, next(iter(vs)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results")
    ap.add_argument("--x")
    ap.add_argument("--y", default="gbs")
    ap.add_argument("--facet")
    ap.add_argument("--logx", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()
    doc = json.loads(pathlib.Path(a.results).read_text())
    rows = doc["rows"]
    numeric = varying(rows, lambda k, v: isinstance(v, (int, float)))
    x = a.x or (numeric[0] if numeric else None)
    if x is None:
        raise SystemExit("no varying numeric parameter to plot against; pass --x")
    others = [k for k in varying(rows) if k != x]
    facet = a.facet or (others[0] if others else None)
    facet_vals = sorted({r["params"].get(facet) for r in rows}, key=str) if facet else [None]
    fig, axes = plt.subplots(1, len(facet_vals), figsize=(5 * len(facet_vals), 4), squeeze=False)
    for ax, fv in zip(axes[0], facet_vals):
        series = {}
        for r in rows:
            p = r["params"]
            if facet and p.get(facet) != fv:
                continue
            rest = ", ".join(f"{k}={p[k]}" for k in others if k != facet and k in p)
            label = r["impl"] + (f" ({rest})" if rest else "")
            series.setdefault(label, []).append((p[x], r.get(a.y)))
        for label, pts in sorted(series.items()):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        if a.y in ("gbs",):
            ax.axhline(doc["copy_bandwidth_gbs"], color="gray", linestyle="--", label="copy bandwidth")
        ax.set_xlabel(x)
        ax.set_ylabel(a.y)
        if a.logx:
            ax.set_xscale("log", base=2)
        ax.set_title(f"{facet} = {fv}" if facet else doc["name"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle(f"{doc['name']} — {doc['device']} ({doc['date'][:10]})")
    fig.tight_layout()
    out = pathlib.Path(a.out) if a.out else pathlib.Path(a.results).with_suffix(".png")
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
