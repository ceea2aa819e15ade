#!/usr/bin/env python3
"""Mutation sweep: do the tests notice a small wrong change to the code they cover?

For each source file given, lists the places where one small edit makes a plausible bug
(a comparison made strict or loose, == and != swapped, && and || swapped, + and - swapped,
a "+ 1" or "- 1" dropped, true and false swapped, std::min and std::max swapped, an
assignment or increment statement deleted), draws --per-file of them (fixed --seed), and for
each one: writes the mutant, rebuilds --targets, runs --test (a shell command, run in the
build folder; exit status 0 = the tests passed), then puts the file back. A mutant is
`killed` when the tests fail (or run past --timeout), `survived` when they pass, `no-build`
when it does not compile. Survivors are either gaps in the tests or edits that change
nothing (equivalent mutants): read each one.

Edits are found outside comments, string and character literals and preprocessor lines, on
binary operators written with a space on both sides (the project's clang-format style), so
`a<b` in a template argument list is never touched.

    tools/mutation_sweep.py --build-dir B --targets "t1 t2" --test "tests/t1 && tests/t2" \\
        --per-file 30 --seed 1 --out report.json decode/verify.cpp decode/sampling.cpp
    tools/mutation_sweep.py --list decode/verify.cpp      # the candidate edits only
    tools/mutation_sweep.py --retest report.json --build-dir B --targets ... --test ... \\
        --out report2.json                                 # the survivors again, after new tests

Run it on a copy of the tree (git worktree add /tmp/mut HEAD), never on one you are editing:
the file under test is rewritten for each mutant (and restored, also on Ctrl-C).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

# (name, pattern on the blanked line, replacement). Patterns need a space on both sides of
# binary operators; the replacement keeps the spaces.
SWAPS = [
    ("rel", r" < ", " <= "), ("rel", r" <= ", " < "), ("rel", r" > ", " >= "), ("rel", r" >= ", " > "),
    ("eq", r" == ", " != "), ("eq", r" != ", " == "),
    ("logic", r" && ", " || "), ("logic", r" \|\| ", " && "),
    ("arith", r" \+ ", " - "), ("arith", r" - ", " + "),
    ("off-by-one", r" \+ 1\b", ""), ("off-by-one", r" - 1\b", ""),
    ("bool", r"\btrue\b", "false"), ("bool", r"\bfalse\b", "true"),
    ("minmax", r"\bstd::min\b", "std::max"), ("minmax", r"\bstd::max\b", "std::min"),
]
# A whole statement that assigns or increments (not a declaration: no type before the name).
DELETABLE = re.compile(r"^\s*(?:(?:\+\+|--)[\w.\[\]>-]+|[A-Za-z_][\w.\[\]>()-]*(?:\+\+|--| [-+*/|&^]?= [^=].*));\s*$")


@dataclass
class Mutant:
    file: str
    line: int  # 1-based
    col: int   # 0-based, in the original line
    kind: str
    before: str  # the line as written
    after: str   # the line mutated
    outcome: str = ""
    seconds: float = 0.0


def blank_non_code(text: str) -> list[str]:
    """The file's lines with comments, string/char literals and preprocessor lines replaced
    by spaces (same length), so operator positions map back onto the original."""
    out, i, n = [], 0, len(text)
    buf = list(text)
    state = None  # None | "line" | "block" | '"' | "'" | "raw"
    raw_end = ""
    while i < n:
        c = text[i]
        if state is None:
            if text.startswith("//", i):
                state = "line"
            elif text.startswith("/*", i):
                state = "block"
            elif text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
                j = text.find("(", i)
                raw_end = ")" + text[i + 2:j] + '"'
                state = "raw"
            elif c in "\"'":
                # a digit separator (1'000) is not a character literal
                if c == "'" and i > 0 and text[i - 1].isalnum() and i + 1 < n and text[i + 1].isalnum():
                    i += 1
                    continue
                state = c
            if state is not None and buf[i] != "\n":
                buf[i] = " "
            i += 1
            continue
        if state == "line":
            if c == "\n":
                state = None
            else:
                buf[i] = " "
        elif state == "block":
            if text.startswith("*/", i):
                buf[i] = buf[i + 1] = " "
                i += 2
                state = None
                continue
            if c != "\n":
                buf[i] = " "
        elif state == "raw":
            if text.startswith(raw_end, i):
                for k in range(len(raw_end)):
                    buf[i + k] = " "
                i += len(raw_end)
                state = None
                continue
            if c != "\n":
                buf[i] = " "
        else:  # inside "..." or '...'
            if c == "\\":
                buf[i] = " "
                if i + 1 < n and text[i + 1] != "\n":
                    buf[i + 1] = " "
                i += 2
                continue
            if c == state:
                state = None
            if c != "\n":
                buf[i] = " "
        i += 1
    for line in "".join(buf).split("\n"):
        out.append(" " * len(line) if line.lstrip().startswith("#") else line)
    return out


def candidates(path: str) -> list[Mutant]:
    text = open(path, encoding="utf-8").read()
    lines = text.split("\n")
    code = blank_non_code(text)
    found: list[Mutant] = []
    for ln, (orig, blank) in enumerate(zip(lines, code), start=1):
        if not blank.strip() or "static_assert" in blank:
            continue
        for kind, pat, rep in SWAPS:
            for m in re.finditer(pat, blank):
                after = orig[:m.start()] + rep + orig[m.end():]
                found.append(Mutant(path, ln, m.start(), kind, orig, after))
        if DELETABLE.match(blank) and blank.rstrip().endswith(";"):
            indent = orig[:len(orig) - len(orig.lstrip())]
            found.append(Mutant(path, ln, len(indent), "delete", orig, indent + ";  // deleted by mutation"))
    return found


def relocate(mutants: list[Mutant]) -> list[Mutant]:
    """Mutants of an earlier report on the files as they are now: each moved to the line holding
    its original text nearest to where it was (the file may have changed around it); dropped,
    with a note, where that text is gone."""
    out = []
    for m in mutants:
        lines = open(m.file, encoding="utf-8").read().split("\n")
        at = [i + 1 for i, ln in enumerate(lines) if ln == m.before]
        if not at:
            print(f"gone: {m.file}:{m.line}: {m.before.strip()}")
            continue
        m.line = min(at, key=lambda i: abs(i - m.line))
        m.outcome, m.seconds = "", 0.0
        out.append(m)
    return out


def run(cmd: str, cwd: str, timeout: float) -> tuple[int, str]:
    """cmd through the shell in its own process group; on timeout the whole group is killed
    (a mutant that loops forever must not keep running under a shell that was stopped)."""
    p = subprocess.Popen(cmd, shell=True, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
        return p.returncode, out[-2000:] + err[-2000:]
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return -1, "timed out"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*")
    ap.add_argument("--retest", default="", help="a report: run its survivors again instead (found by their line's text)")
    ap.add_argument("--list", action="store_true", help="print the candidate edits and stop")
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--targets", default="", help="build targets to rebuild per mutant (space-separated)")
    ap.add_argument("--build-cmd", default="", help="instead of cmake --build BUILD_DIR --target TARGETS")
    ap.add_argument("--test", default="", help="shell command run in the build folder; 0 = tests pass")
    ap.add_argument("--per-file", type=int, default=0, help="mutants drawn per file (0: all)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=120, help="seconds the tests of one mutant may take")
    ap.add_argument("--out", default="", help="JSON report (written after every mutant)")
    a = ap.parse_args()

    plan: list[Mutant] = []
    if a.retest:
        plan = relocate([Mutant(**m) for m in json.load(open(a.retest))["mutants"] if m["outcome"] == "survived"])
    elif not a.files:
        ap.error("give source files (or --retest REPORT)")
    for f in a.files:
        c = candidates(f)
        if a.per_file and len(c) > a.per_file:
            c = sorted(random.Random(f"{a.seed}:{f}").sample(c, a.per_file), key=lambda m: (m.line, m.col))
        plan += c
    if a.list:
        for m in plan:
            print(f"{m.file}:{m.line}:{m.col} [{m.kind}]\n  - {m.before.strip()}\n  + {m.after.strip()}")
        print(f"{len(plan)} mutants")
        return 0
    if not a.test:
        ap.error("--test is required (or --list)")

    build = a.build_cmd or f"cmake --build {a.build_dir}" + (f" --target {a.targets}" if a.targets else "")
    rc, log = run(build, ".", 1800)
    if rc != 0:
        sys.exit(f"the unmutated tree does not build:\n{log}")
    rc, log = run(a.test, a.build_dir, a.timeout)
    if rc != 0:
        sys.exit(f"the tests fail on the unmutated tree (rc {rc}):\n{log}")

    t0 = time.time()
    counts: dict[str, int] = {}
    try:
        for i, m in enumerate(plan, start=1):
            original = open(m.file, encoding="utf-8").read()
            lines = original.split("\n")
            lines[m.line - 1] = m.after
            start = time.time()
            try:
                open(m.file, "w", encoding="utf-8").write("\n".join(lines))
                rc, _ = run(build, ".", 1800)
                if rc != 0:
                    m.outcome = "no-build"
                else:
                    rc, _ = run(a.test, a.build_dir, a.timeout)
                    m.outcome = "survived" if rc == 0 else "killed"
            finally:
                open(m.file, "w", encoding="utf-8").write(original)
            m.seconds = round(time.time() - start, 1)
            counts[m.outcome] = counts.get(m.outcome, 0) + 1
            left = (time.time() - t0) / i * (len(plan) - i)
            print(f"[{i}/{len(plan)}] {m.outcome:8} {m.file}:{m.line} [{m.kind}] {m.after.strip()[:90]}"
                  f"  ({m.seconds:.0f} s, ~{left / 60:.0f} min left)", flush=True)
            if a.out:
                json.dump({"counts": counts, "mutants": [asdict(x) for x in plan[:i]]}, open(a.out, "w"), indent=1)
    finally:
        run(build, ".", 1800)  # leave the build matching the restored sources
    done = sum(counts.values())
    scored = counts.get("killed", 0) + counts.get("survived", 0)
    print(f"{done} mutants: {counts}; killed {counts.get('killed', 0)}/{scored} that built"
          f" ({100.0 * counts.get('killed', 0) / max(scored, 1):.1f}%), {(time.time() - t0) / 60:.1f} min")
    for m in plan:
        if m.outcome == "survived":
            print(f"survived {m.file}:{m.line} [{m.kind}]\n  - {m.before.strip()}\n  + {m.after.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
