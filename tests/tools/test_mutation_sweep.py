"""tools/mutation_sweep.py on a made-up C++ file: the edits it finds (none inside comments,
string, character or raw-string literals, or preprocessor lines; only spaced binary
operators), the outcome of a run (killed, survived, no-build) with the file put back byte for
byte, and --retest finding survivors again after the file moved. Run by ctest as
`tools_mutation_sweep`."""
import json
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "mutation_sweep.py"
sys.path.insert(0, str(ROOT / "tools"))
import mutation_sweep as ms  # noqa: E402

SOURCE = r'''#include <vector>
#define LIMIT(a) ((a) < 3 && (a) > 1)
// a comment: x < y && z == w + 1
int f(int a, int b) {
  const char* s = "a < b || c != d";  /* block: a >= b */
  const char c = '<';
  const char* r = R"x(a == b && true)x";
  std::vector<int> v;
  if (a < b && b != 0) return a + 1;
  v.push_back(a - b);
  a += 2;
  ++b;
  int d = 1'000 - a;
  return std::min(a, b) == d ? true : false;
}
'''


def kinds_on(cands, line):
    return sorted((m.kind, m.after.strip()) for m in cands if m.line == line)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = pathlib.Path(tmp) / "f.cpp"
        src.write_text(SOURCE)
        cands = ms.candidates(str(src))
        lines = {m.line for m in cands}
        # nothing on the #include, #define, comment, string, char or raw-string lines
        assert lines == {9, 10, 11, 12, 13, 14}, sorted(lines)
        assert ("logic", "if (a < b || b != 0) return a + 1;") in kinds_on(cands, 9)
        assert ("eq", "if (a < b && b == 0) return a + 1;") in kinds_on(cands, 9)
        assert ("rel", "if (a <= b && b != 0) return a + 1;") in kinds_on(cands, 9)
        assert ("off-by-one", "if (a < b && b != 0) return a;") in kinds_on(cands, 9)
        assert ("arith", "if (a < b && b != 0) return a - 1;") in kinds_on(cands, 9)
        assert kinds_on(cands, 10) == [("arith", "v.push_back(a + b);")]  # a call is not deleted
        assert kinds_on(cands, 11) == [("delete", ";  // deleted by mutation")]
        assert kinds_on(cands, 12) == [("delete", ";  // deleted by mutation")]
        assert kinds_on(cands, 13) == [("arith", "int d = 1'000 + a;")]  # a declaration is kept
        on14 = kinds_on(cands, 14)
        assert ("minmax", "return std::max(a, b) == d ? true : false;") in on14, on14
        assert ("bool", "return std::min(a, b) == d ? false : false;") in on14, on14

        # A run: the "test" fails exactly when line 9 changed, the "build" fails on line 14's
        # std::max; everything else survives. The file comes back byte for byte.
        report = pathlib.Path(tmp) / "report.json"
        first = pathlib.Path(tmp) / "first.json"
        test = f"grep -qF 'if (a < b && b != 0) return a + 1;' {src}"
        build = f"! grep -qF 'std::max' {src}"
        out = subprocess.run([sys.executable, str(TOOL), "--build-cmd", build, "--build-dir", tmp,
                              "--test", test, "--out", str(report), str(src)],
                             capture_output=True, text=True, check=True).stdout
        assert src.read_text() == SOURCE, "the file was not put back"
        doc = json.loads(report.read_text())
        first.write_text(report.read_text())
        by_line = {}
        for m in doc["mutants"]:
            by_line.setdefault(m["line"], set()).add(m["outcome"])
        assert by_line[9] == {"killed"}, by_line
        assert by_line[10] == by_line[11] == by_line[12] == {"survived"}, by_line
        assert "no-build" in by_line[14], by_line
        assert f"{len(doc['mutants'])} mutants" in out, out

        # A test that hangs, with a child of its own, when line 9 changes: killed by --timeout,
        # and nothing it started is left running.
        hang = (f"grep -qF 'if (a < b && b != 0) return a + 1;' {src} || {{ sleep 313 & sleep 313; }}")
        subprocess.run([sys.executable, str(TOOL), "--build-cmd", "true", "--build-dir", tmp, "--test", hang,
                        "--timeout", "1", "--out", str(report), str(src)], capture_output=True, text=True, check=True)
        assert {m["outcome"] for m in json.loads(report.read_text())["mutants"] if m["line"] == 9} == {"killed"}
        left = subprocess.run(["pgrep", "-f", "sleep 313"], capture_output=True, text=True).stdout
        assert not left.strip(), f"processes of a timed-out test still running: {left}"
        assert src.read_text() == SOURCE

        # --retest after two lines were added on top: the survivors, found on their new lines.
        src.write_text("// moved\n// down\n" + SOURCE)
        again = subprocess.run([sys.executable, str(TOOL), "--retest", str(first), "--list"],
                               capture_output=True, text=True, check=True, cwd="/").stdout
        survivors = sum(m["outcome"] == "survived" for m in doc["mutants"])
        assert f"{survivors} mutants" in again, again
        assert "f.cpp:12:" in again and "f.cpp:9:" not in again, again  # line 10 is now 12
    print("mutation sweep ok")


if __name__ == "__main__":
    main()
