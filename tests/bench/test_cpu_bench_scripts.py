"""Runs the CPU halves of bench/runtime_step.py and bench/e2e_decode.py end to end on a tiny
random model written by `spillway tinymodel` (ctest `bench_cpu_scripts`): the scripts drive the
CLI, parse its JSON lines and write BENCH_FORMAT results. Figures from a random model mean
nothing; this checks the plumbing (rows, fields, greedy identity flag, markdown).

    python3 tests/bench/test_cpu_bench_scripts.py path/to/spillway"""
import json
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
exe = sys.argv[1]

with tempfile.TemporaryDirectory() as d:
    d = pathlib.Path(d)
    model = d / "tiny.gguf"
    subprocess.run([exe, "tinymodel", "--out", str(model), "--layers", "2", "--context", "256"], check=True)

    out = d / "step"
    subprocess.run([sys.executable, str(ROOT / "bench" / "runtime_step.py"), "--cpu", "--exe", exe, "--model",
                    str(model), "--contexts", "4,9", "--ks", "1,3", "--reps", "2", "--out", str(out)], check=True)
    docs = list(out.glob("cpu-*/runtime_step.json"))
    assert len(docs) == 1, docs
    doc = json.loads(docs[0].read_text())
    assert doc["name"] == "runtime_step" and len(doc["rows"]) == 4, doc
    for r in doc["rows"]:
        assert r["impl"] == "spillway:cpu" and r["median_us"] > 0 and r["tokens_per_s"] > 0, r
        assert set(r["params"]) >= {"model", "batch", "context", "k"}, r
        assert r["params"]["weight_bytes"] > 0 and r["gbs"] > 0, r  # the bytes `spillway step` reports
    assert {(r["params"]["context"], r["params"]["k"]) for r in doc["rows"]} == {(4, 1), (4, 3), (9, 1), (9, 3)}
    assert (docs[0].parent / "runtime_step.md").read_text().count("spillway:cpu") == 4

    out = d / "e2e"
    subprocess.run([sys.executable, str(ROOT / "bench" / "e2e_decode.py"), "--spillway", exe, "--model", str(model),
                    "--quick", "--max-tokens", "8", "--self-layers", "1", "--out", str(out)], check=True)
    doc = json.loads((out / "e2e_decode.json").read_text())
    rows = {r["case"]: r for r in doc["rows"]}
    assert "greedy_none" in rows and "sampled_none" in rows and "greedy_maxgram" in rows, list(rows)
    assert rows["greedy_maxgram tree=4"]["params"]["tree"] == 4, list(rows)  # token-tree rows

    for case, r in rows.items():
        assert r["tokens_per_s"] > 0 and r["speedup"] is not None, r
        if case.startswith("greedy_") and case != "greedy_none":
            assert r["identical_to_autoregressive"] is True, r  # exact greedy verification
    assert rows["greedy_none"]["speedup"] == 1.0
    assert "| greedy | `maxgram` |" in (out / "e2e_decode.md").read_text()

    out = d / "e2e_only"  # a subset: --only rows (+ the autoregressive base), --modes
    subprocess.run([sys.executable, str(ROOT / "bench" / "e2e_decode.py"), "--spillway", exe, "--model", str(model),
                    "--quick", "--max-tokens", "4", "--only", "maxgram", "--modes", "greedy", "--out", str(out)],
                   check=True)
    doc = json.loads((out / "e2e_decode.json").read_text())
    assert [r["case"] for r in doc["rows"]] == ["greedy_none", "greedy_maxgram"], doc["rows"]
print("cpu bench scripts ok")
