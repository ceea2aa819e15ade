"""CPU checks of the benchmark output code: markdown table, slug, and the plot script on a
synthetic results file (run by ctest as `bench_results_format`)."""
import json
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import os  # noqa: E402

from results_format import device_slug, git_commit, markdown_table  # noqa: E402

doc = {"name": "demo", "device": "NVIDIA H100 80GB HBM3", "driver": "580", "commit": "abc",
       "date": "2026-11-25T00:00:00Z", "copy_bandwidth_gbs": 3000.0,
       "rows": [{"case": f"b{b}_kv{kv}", "impl": impl, "median_us": t, "gbs": 2e3 / t, "pct_copy": 1.0,
                 "params": {"batch": b, "kv_len": kv}}
                for b in (1, 8) for kv in (1024, 4096) for impl, t in (("spillway", 10.0), ("torch_sdpa", 25.0))],
       "skipped": [{"case": "b1_kv1024", "impl": "flashinfer", "reason": "wheel not carried"}]}
assert device_slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
md = markdown_table(doc)
assert "| b1_kv1024 | torch_sdpa | 25.00 |" in md and "| 2.50 |" in md, md
assert "flashinfer: wheel not carried" in md
assert "copy bandwidth 3000.0 GB/s" in md and "| 1.0 |" in md
# A CPU table has no copy bandwidth: it says so and leaves % of copy blank instead of 0.0.
cpu = markdown_table({**doc, "copy_bandwidth_gbs": 0.0})
assert "copy bandwidth not measured" in cpu and "| 10.00 | 200.0 |  |" in cpu, cpu
with tempfile.TemporaryDirectory() as d:
    f = pathlib.Path(d) / "demo.json"
    f.write_text(json.dumps(doc))
    subprocess.run([sys.executable, str(ROOT / "bench" / "plot.py"), str(f), "--logx"], check=True)
    assert (pathlib.Path(d) / "demo.png").stat().st_size > 1000
# draft_replay's --costs: the batch-1 argmax curve with step graphs (the backend's default);
# runtime_step's graphs-off, batch-invariant and top-k rows of the same cases must not replace it.
from draft_replay import load_costs  # noqa: E402

step = {"rows": [{"impl": impl, "median_us": t * k,
                  "params": {"model": "m", "batch": 1, "context": 512, "k": k, "output": "argmax",
                             **({} if graphs else {"cuda_graphs": False})}}
                 for k in (1, 4) for impl, t, graphs in (("spillway:cuda:argmax", 50.0, True),
                                                         ("spillway:cuda:argmax:no-graphs", 90.0, False))]}
step["rows"] += [{"impl": "spillway:cuda:argmax:invariant", "median_us": 70.0 * k,
                  "params": {"model": "m", "batch": 1, "context": 512, "k": k, "output": "argmax",
                             "batch_invariant": True}} for k in (1, 4)]
step["rows"] += [{"impl": "spillway:cuda:topk", "median_us": 60.0 * k,  # (a recycling drafter's curve)
                  "params": {"model": "m", "batch": 1, "context": 512, "k": k, "output": "topk"}} for k in (1, 4)]
with tempfile.TemporaryDirectory() as d:
    f = pathlib.Path(d) / "runtime_step.json"
    f.write_text(json.dumps(step))
    assert load_costs(str(f)) == {1: 50.0, 4: 200.0}, load_costs(str(f))
# In a git checkout the commit is HEAD's, whatever a leftover .carry/commit.txt says.
head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
if head.returncode == 0 and not os.environ.get("SPW_COMMIT"):
    assert git_commit() == head.stdout.strip(), (git_commit(), head.stdout)
# tokens_per_cost.py: each pass priced at its own size on t(n) = 1 + s (n - 1). Two prompts: 10
# tokens in 4 passes (2 of 1 token, 2 of 3), 6 tokens in 2 passes of 5.
import tokens_per_cost  # noqa: E402

with tempfile.TemporaryDirectory() as d:
    f = pathlib.Path(d) / "run.jsonl"
    f.write_text(json.dumps({"tokens": 10, "target_passes": 4, "passes_of": [0, 2, 0, 2]}) + "\n" +
                 json.dumps({"tokens": 6, "target_passes": 2, "passes_of": [0, 0, 0, 0, 0, 2]}) + "\n")
    r = tokens_per_cost.summary(f, [0.0, 0.5])
    assert (r["tokens"], r["passes"], r["prompts"]) == (16, 6, 2), r
    assert abs(r["tokens_per_pass"] - 16 / 6) < 1e-12 and abs(r["nodes_per_pass"] - (18 / 6 - 1)) < 1e-12, r
    assert abs(r["s=0"] - 16 / 6) < 1e-12, r  # a flat curve: tokens per pass
    assert abs(r["s=0.5"] - 16 / (2 * 1 + 2 * 2 + 2 * 3)) < 1e-12, r  # t(1) = 1, t(3) = 2, t(5) = 3
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "tokens_per_cost.py"), str(f), "--slopes", "0.5"],
                         capture_output=True, text=True, check=True).stdout
    assert "| run.jsonl | 2 | 16 | 6 | 2.667 | 2.0 | 1.333x |" in out, out
print("results format ok")
