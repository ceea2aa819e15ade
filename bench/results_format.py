"""Results files of BENCH_FORMAT.md: device slug and the markdown table (no torch needed,
so the CPU test suite checks them)."""


def device_slug(name: str) -> str:
    return "-".join(name.lower().split())


def markdown_table(doc: dict) -> str:
    """One line per (case, impl): time, GB/s, % of copy, TFLOP/s, and the ratio
    impl time / spillway time (> 1 means Spillway is faster)."""
    lines = [f"# {doc['name']} — {doc['device']}", "",
             f"driver {doc['driver']}, commit `{doc['commit'][:12]}`, {doc['date']}, "
             f"copy bandwidth {doc['copy_bandwidth_gbs']} GB/s (read + write). "
             "`vs spillway` = this impl's time / Spillway's time (> 1: Spillway faster).", "",
             "| case | impl | median µs | GB/s | % of copy | TFLOP/s | vs spillway |",
             "|---|---|---:|---:|---:|---:|---:|"]
    ours = {r["case"]: r["median_us"] for r in doc["rows"] if r["impl"] == "spillway"}
    for r in doc["rows"]:
        ratio = f"{r['median_us'] / ours[r['case']]:.2f}" if r["case"] in ours else ""
        lines.append(f"| {r['case']} | {r['impl']} | {r['median_us']:.2f} | {r['gbs']:.1f} | "
                     f"{r['pct_copy']:.1f} | {r.get('tflops', '')} | {ratio} |")
    if doc.get("skipped"):
        lines += ["", "## Not run", ""]
        lines += [f"- {s['case']} / {s['impl']}: {s['reason']}" for s in doc["skipped"]]
    return "\n".join(lines) + "\n"
