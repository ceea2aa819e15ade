"""Results files of BENCH_FORMAT.md: device names and slugs, the markdown table, and where
the spillway CLI was built (no torch needed, so the CPU test suite checks them)."""
import json
import os
import pathlib
import platform
import re
import signal
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent


def default_exe() -> str:
    """The spillway CLI of the GPU build (build-gpu/, tools/gpu/run_all.sh) or else of build/."""
    for d in ("build-gpu", "build"):
        p = ROOT / d / "tools" / "spillway"
        if p.exists():
            return str(p)
    return str(ROOT / "build" / "tools" / "spillway")


def git_commit() -> str:
    """The measured tree's commit: $SPW_COMMIT, else `git rev-parse HEAD` where the tree is a git
    checkout, else .carry/commit.txt (the GPU machine's copy has no .git), else 'unknown'. Git
    comes before the carried file so that a stale .carry/ left on a development machine does
    not mislabel its results."""
    if os.environ.get("SPW_COMMIT"):
        return os.environ["SPW_COMMIT"]
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        if head:
            return head
    except Exception:  # noqa: BLE001
        pass
    f = ROOT / ".carry" / "commit.txt"
    if f.exists():  # "<sha>\n+dirty\n" for a dirty tree: one line, as run_all.sh's SPW_COMMIT
        return "".join(f.read_text().split())
    return "unknown"


def binary_commit(exe: str) -> str | None:
    """The commit `exe --version` says the binary was built from ("<sha>" or "<sha>+dirty"), or
    None where it cannot say (a binary older than --version, or one that does not run)."""
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"\bcommit (\S+)", out)
    return m.group(1) if m and m.group(1) != "unknown" else None


def short_commit(commit: str) -> str:
    """A commit as the markdown files show it: 12 hex digits, and "+dirty" where it has it."""
    return commit[:12] + ("+dirty" if commit.endswith("+dirty") else "")


def measured_commit(exe: str) -> str:
    """The commit a CLI benchmark's results are labelled with: the one the measured binary was
    built from (`exe --version`), else git_commit(). Warns on stderr when the binary is not the
    checkout's (built before its last commit, or from uncommitted changes): its numbers belong
    to that build, not to the checked-out code."""
    built, tree = binary_commit(exe), git_commit()
    if built is None:
        return tree
    if built.endswith("+dirty"):
        print(f"warning: {exe} was built from uncommitted changes on {built[:12]}: its results are "
              f"labelled '{built}'", file=sys.stderr, flush=True)
    elif tree != "unknown" and built != tree.replace("+dirty", ""):
        print(f"warning: {exe} was built from {built[:12]}, the checkout is {tree[:12]}: its results "
              f"are labelled with the binary's commit (rebuild to measure the checkout)", file=sys.stderr, flush=True)
    return built


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (e.g. 'AMD EPYC')."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def cpu_slug() -> str:
    """Results folder of CPU runs: cpu-<model name>."""
    return "cpu-" + "-".join(cpu_name().lower().replace("(r)", "").replace("(tm)", "").split())[:60]


def gpu_name_driver() -> tuple[str, str]:
    """(name, driver) of GPU 0 from nvidia-smi, or ('unknown-gpu', 'unknown')."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, check=True).stdout.splitlines()[0]
        name, driver = (s.strip() for s in out.split(",", 1))
        return name, driver
    except (OSError, subprocess.CalledProcessError, IndexError, ValueError):
        return "unknown-gpu", "unknown"


def device_slug(name: str) -> str:
    return "-".join(name.lower().split())


def backend_device(backend: str) -> tuple[str, str, str]:
    """(device, driver, results folder slug) of a run on `backend`: GPU 0 for "cuda", else this CPU."""
    if backend == "cuda":
        name, driver = gpu_name_driver()
        return name, driver, device_slug(name)
    return f"{cpu_name()} ({os.cpu_count()} threads)", "none", cpu_slug()


def generate_json(spillway: str, model: str, prompts, max_tokens: int, extra: list[str], backend: str = "",
                  quiet: bool = False) -> list[dict]:
    """Runs `spillway generate --prompts ... --json` with `extra` options and returns its JSON lines."""
    fd, out = tempfile.mkstemp(suffix=".jsonl")
    os.close(fd)
    cmd = [spillway, "generate", "--model", model, "--prompts", str(prompts), "--json", out,
           "--max-tokens", str(max_tokens)] + extra + (["--backend", backend] if backend else [])
    print("$", " ".join(cmd), flush=True)
    try:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL if quiet else None)
        return [json.loads(line) for line in open(out) if line.strip()]
    finally:
        os.unlink(out)


class Stopped(Exception):
    """A SIGTERM during run_until_stopped's work (tools/gpu/run_all.sh's time limit)."""


def run_until_stopped(work) -> str | None:
    """Runs work() with SIGTERM raising Stopped (subprocess.run kills a child under way) and
    returns the signal's name if that stopped it, else None. SIGTERM is ignored afterwards, so
    that the caller writes the rows measured so far (`timeout` sends SIGKILL 10 s later)."""
    def stop(signum, _frame):
        raise Stopped(signal.Signals(signum).name)
    signal.signal(signal.SIGTERM, stop)
    try:
        work()
        return None
    except Stopped as e:
        return str(e)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def quick_prompt_set(prompts) -> pathlib.Path:
    """The --quick subset of the e2e prompt set (2 prompts of each category), in a temporary file."""
    lines = [l for l in open(prompts) if l.strip()]
    out = pathlib.Path(tempfile.mkstemp(suffix=".jsonl")[1])
    out.write_text("".join(lines[0:2] + lines[11:13] + lines[22:24]))
    return out


def markdown_table(doc: dict) -> str:
    """One line per (case, impl): time, GB/s, % of copy, TFLOP/s, and the ratio
    impl time / spillway time (> 1 means Spillway is faster)."""
    lines = [f"# {doc['name']} — {doc['device']}", "",
             f"driver {doc['driver']}, commit `{short_commit(doc['commit'])}`, {doc['date']}, "
             + (f"copy bandwidth {doc['copy_bandwidth_gbs']} GB/s (read + write). " if doc.get("copy_bandwidth_gbs")
                else "copy bandwidth not measured (% of copy left blank). ") +
             "`vs spillway` = this impl's time / Spillway's time (> 1: Spillway faster).", ""]
    if doc.get("incomplete"):
        lines += [f"**Incomplete**: {doc['incomplete']}.", ""]
    lines += ["| case | impl | median µs | GB/s | % of copy | TFLOP/s | vs spillway |",
             "|---|---|---:|---:|---:|---:|---:|"]
    ours = {r["case"]: r["median_us"] for r in doc["rows"] if r["impl"] == "spillway"}
    for r in doc["rows"]:
        ratio = f"{r['median_us'] / ours[r['case']]:.2f}" if r["case"] in ours else ""
        pct = f"{r['pct_copy']:.1f}" if doc.get("copy_bandwidth_gbs") else ""
        lines.append(f"| {r['case']} | {r['impl']} | {r['median_us']:.2f} | {r['gbs']:.1f} | "
                     f"{pct} | {r.get('tflops', '')} | {ratio} |")
    if doc.get("skipped"):
        lines += ["", "## Not run", ""]
        lines += [f"- {s['case']} / {s['impl']}: {s['reason']}" for s in doc["skipped"]]
    return "\n".join(lines) + "\n"
