"""Runs the CPU halves of bench/runtime_step.py, bench/e2e_decode.py and bench/draft_replay.py end to end on a tiny
random model written by `spillway tinymodel` (ctest `bench_cpu_scripts`): the scripts drive the
CLI, parse its JSON lines and write BENCH_FORMAT results. Figures from a random model mean
nothing; this checks the plumbing (rows, fields, greedy identity flag, markdown).

    python3 tests/bench/test_cpu_bench_scripts.py path/to/spillway"""
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import results_format  # noqa: E402
exe = sys.argv[1]

with tempfile.TemporaryDirectory() as d:
    d = pathlib.Path(d)
    model = d / "tiny.gguf"
    subprocess.run([exe, "tinymodel", "--out", str(model), "--layers", "2", "--context", "256"], check=True)
    # sizes the writer cannot use are refused by name (--heads 0 used to divide by zero), and so
    # are bigram build's counts
    for extra, msg in ((["--heads", "0"], "heads = 0: must be >= 1"), (["--kv-heads", "0"], "kv_heads = 0: must be >= 1"),
                       (["--layers", "0"], "layers = 0: must be >= 1"), (["--context", "0"], "context = 0: must be >= 1"),
                       (["--inter", "0"], "intermediate = 0: must be >= 1")):
        bad = subprocess.run([exe, "tinymodel", "--out", str(d / "bad.gguf")] + extra, capture_output=True, text=True)
        assert bad.returncode == 1 and msg in bad.stderr and not (d / "bad.gguf").exists(), (extra, bad.stderr)
    (d / "words.txt").write_text("one two three two one\n")
    for extra, msg in ((["--top-k", "0"], "--top-k = 0: must be >= 1"), (["--top-k", "-1"], "--top-k = -1: must be >= 1"),
                       (["--top-k", "x"], "--top-k = 'x': not an integer"), (["--batch", "0"], "--batch = 0: must be >= 1"),
                       (["--batch", "99999999999"], "--batch = '99999999999': out of the 32-bit range")):
        bad = subprocess.run([exe, "bigram", "build", "--model", str(model), "--text", str(d / "words.txt"), "--out",
                              str(d / "bad.bigram")] + extra, capture_output=True, text=True)
        assert bad.returncode == 1 and msg in bad.stderr, (extra, bad.stderr)

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
    # results are labelled with the commit the measured binary was built from (`spillway --version`)
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    built = re.fullmatch(r"spillway \S+ commit ([0-9a-f]{40}(\+dirty)?|unknown) \(.*\)\n", version)
    assert built, version
    assert doc["commit"] == results_format.binary_commit(exe) == built.group(1) or built.group(1) == "unknown", (doc, version)
    # a binary built from another commit than the checkout's is named, with a warning
    fake = d / "old-spillway"
    fake.write_text("#!/bin/sh\necho 'spillway 0.1.0 commit 0123456789abcdef0123456789abcdef01234567 (Release, CUDA OFF)'\n")
    fake.chmod(0o755)
    probe = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import results_format as r; "
                            "print(r.measured_commit(sys.argv[2]))", str(ROOT / "bench"), str(fake)],
                           capture_output=True, text=True, check=True, env={**os.environ, "SPW_COMMIT": "f" * 40})
    assert probe.stdout.strip() == "0123456789abcdef0123456789abcdef01234567", probe
    assert "was built from 0123456789ab, the checkout is ffffffffffff" in probe.stderr, probe.stderr
    assert results_format.binary_commit(str(d / "missing-exe")) is None
    # `spillway step --output topk` times forward_topk (runtime_step's spillway:cuda:topk rows)
    step = subprocess.run([exe, "step", "--model", str(model), "--contexts", "4", "--ks", "1,3", "--reps", "1",
                           "--output", "topk"], capture_output=True, text=True, check=True)
    lines = [json.loads(x) for x in step.stdout.splitlines()]
    assert [(x["k"], x["output"]) for x in lines] == [(1, "topk"), (3, "topk")], step.stdout
    bad = subprocess.run([exe, "step", "--model", str(model), "--output", "top8"], capture_output=True, text=True)
    assert bad.returncode != 0 and "--output = 'top8': must be logits, argmax or topk" in bad.stderr, bad.stderr

    out = d / "e2e"
    subprocess.run([sys.executable, str(ROOT / "bench" / "e2e_decode.py"), "--spillway", exe, "--model", str(model),
                    "--quick", "--max-tokens", "8", "--self-layers", "1", "--out", str(out)], check=True)
    doc = json.loads((out / "e2e_decode.json").read_text())
    rows = {r["case"]: r for r in doc["rows"]}
    assert "greedy_none" in rows and "sampled_none" in rows and "greedy_maxgram" in rows, list(rows)
    assert rows["greedy_maxgram tree=4"]["params"]["tree"] == 4, list(rows)  # token-tree rows
    assert rows["greedy_maxgram cost"]["params"]["draft_length"] == "cost", list(rows)  # by the cost curve
    assert "greedy_maxgram tree=16 k=12 cost" in rows, list(rows)
    # with a bigram table, every wide cascade tree has its Max-Gram-alone twin (#9 compares the
    # best cascade with the best single drafter, like for like)
    sys.path.insert(0, str(ROOT / "bench"))
    import e2e_decode  # noqa: PLC0415
    wide = {(spec, length) for spec, tree, k, length in e2e_decode.configs(8, True) if tree == 16 and k == 12}
    assert wide == {(s, l) for s in ("maxgram", "maxgram+bigram") for l in ("fixed", "cost")} | {
        ("maxgram+recycle", "cost"), ("recycle", "cost"), ("maxgram+recycle", "grow"), ("recycle", "grow")
    }, wide  # recycle: its own single-drafter twin; grow: --draft-length cost --tree-grow

    for case, r in rows.items():
        assert r["tokens_per_s"] > 0 and r["speedup"] is not None, r
        if case.startswith("greedy_") and case != "greedy_none":
            assert r["identical_to_autoregressive"] is True, r  # exact greedy verification
    assert rows["greedy_none"]["speedup"] == 1.0
    assert "| greedy | `maxgram` |" in (out / "e2e_decode.md").read_text()

    out = d / "e2e_only"  # a subset: --only rows (+ the autoregressive base), --modes
    subprocess.run([sys.executable, str(ROOT / "bench" / "e2e_decode.py"), "--spillway", exe, "--model", str(model),
                    "--quick", "--max-tokens", "4", "--only", "maxgram", "--modes", "greedy", "--rounds", "2",
                    "--batch-invariant", "--out", str(out)], check=True)
    doc = json.loads((out / "e2e_decode.json").read_text())
    assert [r["case"] for r in doc["rows"]] == ["greedy_none", "greedy_maxgram"], doc["rows"]
    # --batch-invariant reaches `spillway generate` (a no-op on the CPU backend) and the params
    assert all(r["params"]["batch_invariant"] is True for r in doc["rows"]), doc["rows"]
    mg = doc["rows"][1]  # --rounds 2: median speedup with its spread
    assert mg["params"]["rounds"] == 2 and mg["speedup_min"] <= mg["speedup"] <= mg["speedup_max"], mg
    assert mg["identical_to_autoregressive"] is True and doc["rows"][0]["speedup"] == 1.0, doc["rows"]
    assert "interleaved rounds" in (out / "e2e_decode.md").read_text()
    # with a bigram table: the wide tree row, whose k and draft length are its own
    subprocess.run([exe, "bigram", "build", "--model", str(model), "--text", str(ROOT / "README.md")], check=True)
    subprocess.run([sys.executable, str(ROOT / "bench" / "e2e_decode.py"), "--spillway", exe, "--model", str(model),
                    "--quick", "--max-tokens", "16", "--only",
                    "maxgram+bigram tree=16 k=12 fixed|maxgram+recycle tree=16 k=12 grow", "--modes", "greedy",
                    "--out", str(out)], check=True)
    doc = json.loads((out / "e2e_decode.json").read_text())
    wide, grown = doc["rows"][1], doc["rows"][2]
    assert wide["case"] == "greedy_maxgram+bigram tree=16 k=12 fixed", doc["rows"]
    assert wide["params"]["k"] == 12 and wide["params"]["draft_length"] == "fixed" and wide["params"]["tree"] == 16
    assert wide["identical_to_autoregressive"] is True, wide
    assert grown["case"] == "greedy_maxgram+recycle tree=16 k=12 grow", doc["rows"]
    assert grown["params"]["draft_length"] == "cost" and grown["params"]["tree_grow"] is True, grown
    assert wide["params"]["tree_grow"] is False and grown["identical_to_autoregressive"] is True, grown
    # a row whose run fails is skipped with the reason, the others still run (exit status 1)
    e2e = [sys.executable, str(ROOT / "bench" / "e2e_decode.py"), "--spillway", exe, "--model", str(model),
           "--quick", "--max-tokens", "4", "--modes", "greedy"]
    bad = subprocess.run(e2e + ["--self-layers", "99", "--only", "self:99|maxgram", "--out", str(d / "e2e_fail")],
                         capture_output=True, text=True)
    doc = json.loads((d / "e2e_fail" / "e2e_decode.json").read_text())
    assert bad.returncode == 1 and [r["case"] for r in doc["rows"]] == ["greedy_none", "greedy_maxgram"], doc
    assert [x["case"] for x in doc["skipped"]] == ["greedy_self:99"], doc["skipped"]
    # a SIGTERM (tools/gpu/run_all.sh's time limit) writes the rows measured so far, marked incomplete
    stop_out = d / "e2e_stop"
    p = subprocess.Popen(e2e + ["--self-layers", "1", "--out", str(stop_out)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    started = 0
    for line in p.stdout:  # three runs under way: the first two have finished
        started += line.startswith("$ ")
        if started == 3:
            p.send_signal(signal.SIGTERM)
            break
    p.communicate(timeout=60)
    doc = json.loads((stop_out / "e2e_decode.json").read_text())
    cases = [r["case"] for r in doc["rows"]]
    assert doc["incomplete"].startswith("stopped by SIGTERM"), doc.get("incomplete")
    assert cases[:2] == ["greedy_none", "greedy_maxgram cost"] and len(cases) < 18, cases
    assert "**Incomplete:**" in (stop_out / "e2e_decode.md").read_text()

    # draft_replay: records the greedy outputs, replays configurations; a replayed run takes the
    # same steps as a real one (passes, drafted tokens, output), checked here on a real model run.
    prompts = d / "prompts.jsonl"
    lines = [l for l in open(ROOT / "bench/prompts/e2e_prompts.jsonl") if l.strip()]
    prompts.write_text("".join(lines[0:2] + lines[22:24]))
    configs = d / "configs.json"
    configs.write_text(json.dumps([["maxgram", 1, 4, "adaptive"], ["maxgram", 4, 6, "fixed"], ["maxgram", 1, 4, "cost"],
                                ["maxgram", 4, 6, "cost"]]))
    out = d / "replay"
    subprocess.run([sys.executable, str(ROOT / "bench" / "draft_replay.py"), "--spillway", exe, "--model", str(model),
                    "--prompts", str(prompts), "--max-tokens", "24", "--configs", str(configs),
                    "--costs", str(docs[0]), "--out", str(out)], check=True)
    doc = json.loads((out / "draft_replay.json").read_text())
    assert doc["name"] == "draft_replay" and len(doc["rows"]) == 4, doc
    for r in doc["rows"]:
        assert r["tokens_per_pass"] >= 1 and r["nodes_per_pass"] >= 1 and r["est_speedup"] > 0, r
        assert r["params"]["prompts"] == 4, r
    assert "| `maxgram` | 4 | 6 | fixed |" in (out / "draft_replay.md").read_text()
    assert "| `maxgram` | 1 | 4 | cost |" in (out / "draft_replay.md").read_text()  # given the --costs curve
    assert "| `maxgram` | 4 | 6 | cost |" in (out / "draft_replay.md").read_text()  # a pruned tree
    # --quick (6 prompts, 64 tokens) and --costs auto (the output folder's runtime_step.json)
    quick = d / "replay_quick"
    (quick).mkdir()
    (quick / "runtime_step.json").write_text(docs[0].read_text())
    subprocess.run([sys.executable, str(ROOT / "bench" / "draft_replay.py"), "--spillway", exe, "--model", str(model),
                    "--quick", "--configs", str(configs), "--costs", "auto", "--out", str(quick)], check=True)
    qdoc = json.loads((quick / "draft_replay.json").read_text())
    assert all(r["params"]["prompts"] == 6 and r["params"]["max_tokens"] == 64 and "est_speedup" in r
               for r in qdoc["rows"]), qdoc["rows"]
    assert qdoc["costs"].endswith("runtime_step.json"), qdoc["costs"]
    ref = out / "draft_replay_reference.jsonl"
    real_json, replay_json = d / "real.jsonl", d / "replayed.jsonl"
    common = [exe, "generate", "--model", str(model), "--prompts", str(prompts), "--max-tokens", "24",
              "--draft", "maxgram", "--tree", "4", "--k", "6", "--draft-length", "fixed"]
    subprocess.run(common + ["--json", str(real_json)], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(common + ["--json", str(replay_json), "--replay", str(ref)], check=True, stdout=subprocess.DEVNULL)
    real = [json.loads(l) for l in open(real_json)]
    replayed = [json.loads(l) for l in open(replay_json)]
    keys = ("id", "tokens", "target_passes", "drafted", "accepted_per_step", "output", "passes_of")
    assert [[r[k] for k in keys] for r in real] == [[r[k] for k in keys] for r in replayed], (real, replayed)
    assert all(r["replay"] for r in replayed) and not any(r["replay"] for r in real)
    tree_row = doc["rows"][1]
    assert abs(tree_row["tokens_per_pass"] - sum(r["tokens"] for r in real) / sum(r["target_passes"] for r in real)) < 1e-3
    # --draft-length cost: measured on the target when no --cost-curve is given (and printed),
    # given for --replay; bad curves and a curve without the mode are refused
    cost = [exe, "generate", "--model", str(model), "--prompts", str(prompts), "--max-tokens", "8",
            "--draft", "maxgram", "--k", "4", "--draft-length", "cost"]
    run = subprocess.run(cost, capture_output=True, text=True)
    assert run.returncode == 0 and "draft length by cost, t(n)/t(1) for n = 1..5: 1.00 " in run.stderr, run.stderr
    run = subprocess.run(cost + ["--replay", str(ref), "--cost-curve", "1,1.2"], capture_output=True, text=True)
    assert run.returncode == 0 and "t(n)/t(1) for n = 1..2: 1.00 1.20" in run.stderr, run.stderr
    # a tree's curve covers the pending token + up to 64 nodes
    run = subprocess.run(cost + ["--tree", "3"], capture_output=True, text=True)
    assert run.returncode == 0 and "t(n)/t(1) for n = 1..65: 1.00 " in run.stderr, run.stderr
    for extra, msg in ((["--replay", str(ref)], "--replay with --draft-length cost needs --cost-curve"),
                       (["--cost-curve", "1,x"], "--cost-curve '1,x': 'x' is not a number"),
                       (["--cost-curve", "1,0"], "t(2) = 0: must be a positive number"),
                       (["--k", "100"], "--k = 100: must be in [0, 64]"),  # before any timing
                       (["--tree", "17"], "--tree = 17: must be in [1, 16] (1: a chain)"),
                       (["--tree", "0"], "--tree = 0: must be in [1, 16]"),
                       (["--temperature", "-1"], "--temperature = -1: must be a finite number >= 0 (0: greedy)"),
                       (["--temperature", "nan"], "--temperature = nan: must be a finite number >= 0"),
                       (["--temperature", "0.7", "--top-p", "1.5"], "--top-p = 1.5: must be in (0, 1]"),
                       (["--draft", ""], "--draft '': an empty spec (none: autoregressive"),
                       (["--context", "0"], "--context = 0: must be in [1, 256] (the model's trained context)"),
                       (["--context", "257"], "--context = 257: must be in [1, 256]"),
                       (["--k", "1e10"], "--k = '1e10': not an integer (draft tokens)"),  # was cast to INT_MIN
                       (["--k", "2.5"], "--k = '2.5': not an integer"),
                       (["--max-tokens", "99999999999"], "--max-tokens = '99999999999': out of the 32-bit range (tokens)"),
                       (["--k", "-99999999999"], "--k = '-99999999999': out of the 32-bit range"),
                       (["--seed", "-1"], "--seed = '-1': not an integer in [0, 2^64)")):
        bad = subprocess.run(cost + extra, capture_output=True, text=True)
        assert bad.returncode != 0 and msg in bad.stderr, (extra, bad.stderr)
    # a prompt that fills --context generates nothing and says why (no crash, exit 0)
    full = subprocess.run([exe, "generate", "--model", str(model), "--prompt", "a b c d e f g h i j k l m n o p",
                           "--raw", "--max-tokens", "4", "--context", "8"], capture_output=True, text=True)
    assert full.returncode == 0 and "which fill the context of 8: nothing is generated (--context N raises it, up to 256)" \
        in full.stderr and "stop: context_limit" in full.stderr, full.stderr
    # a context shorter than the largest tree pass: the cost curve stops at the context (a
    # 4-branch tree of up to 64 nodes used to ask for 65-token passes in a 40-token context)
    small = subprocess.run([exe, "generate", "--model", str(model), "--prompt", "a b c", "--raw", "--max-tokens", "40",
                            "--context", "40", "--tree", "4"], capture_output=True, text=True)
    assert small.returncode == 0 and "t(n)/t(1) for n = 1..40:" in small.stderr, small.stderr
    bad = subprocess.run(common + ["--cost-curve", "1,2"], capture_output=True, text=True)
    assert bad.returncode != 0 and "--cost-curve is for --draft-length cost" in bad.stderr, bad.stderr
    # --tree-grow: a tree by cost, from a drafter with a table (Max-Gram alone has none)
    for extra, msg in ((["--tree-grow"], "--tree-grow needs a drafter, --tree W > 1 and --draft-length cost"),
                       (["--tree", "3", "--tree-grow", "--draft-length", "fixed"], "--tree-grow needs a drafter"),
                       (["--tree", "3", "--tree-grow"], "drafter 'maxgram' has no bigram table to grow trees from")):
        bad = subprocess.run(cost + extra, capture_output=True, text=True)
        assert bad.returncode != 0 and msg in bad.stderr, (extra, bad.stderr)
    # cost is the CLI's default draft length; under --replay with no curve it falls back to
    # adaptive (and says so); plain decoding measures nothing
    default = cost[:cost.index("--draft-length")]
    run = subprocess.run(default, capture_output=True, text=True)
    assert run.returncode == 0 and "draft length by cost, t(n)/t(1) for n = 1..5: 1.00 " in run.stderr, run.stderr
    run = subprocess.run(default + ["--replay", str(ref)], capture_output=True, text=True)
    assert run.returncode == 0 and "draft length adaptive: --replay has no target to time" in run.stderr, run.stderr
    run = subprocess.run(default[:default.index("--draft")] + ["--draft", "none"], capture_output=True, text=True)
    assert run.returncode == 0 and "draft length" not in run.stderr, run.stderr
    # --replay refuses sampled decoding and prompts it has no output for
    bad = subprocess.run(common + ["--replay", str(ref), "--temperature", "0.7"], capture_output=True, text=True)
    assert bad.returncode != 0 and "--replay needs --prompts and greedy decoding" in bad.stderr, bad.stderr
    prompts.write_text(lines[5])
    bad = subprocess.run(common + ["--replay", str(ref)], capture_output=True, text=True)
    assert bad.returncode != 0 and "has no output for prompt 'math-06'" in bad.stderr, bad.stderr
print("cpu bench scripts ok")
