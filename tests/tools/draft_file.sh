#!/usr/bin/env bash
# `spillway generate --draft @FILE` on a tiny random model: a cascade laid out over several
# lines with comments decodes with the same output as plain decoding (greedy), and a missing
# file or a bad spec in a file is an error that names the file.
set -euo pipefail
exe=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$exe" tinymodel --out "$dir/tiny.gguf" --layers 2 --context 256 >/dev/null
cat > "$dir/cascade.spec" <<'SPEC'
# two positions from the target's first layer, reviewed by Max-Gram; then Max-Gram alone
hcascade(
  vcascade(self:1, maxgram; lenience=2) * 2,   # early positions
  maxgram * 3                                  # late positions
)
SPEC
out=$("$exe" generate --model "$dir/tiny.gguf" --prompt "hello hello hello" --max-tokens 24 \
      --draft "@$dir/cascade.spec" --compare 2>&1)
echo "$out" | grep -qF -- "--- hcascade(vcascade(self:1,maxgram;lenience=2)*2,maxgram*3) ---" \
  || { echo "FAIL: the spec read from the file is not reported:"; echo "$out"; exit 1; }
echo "$out" | grep -q "greedy outputs identical" || { echo "FAIL: outputs differ:"; echo "$out"; exit 1; }
expect_error() {  # expect_error PATTERN ARGS...: the command fails and says PATTERN
  local pattern=$1; shift
  if msg=$("$exe" generate --model "$dir/tiny.gguf" --prompt hi --max-tokens 2 "$@" 2>&1); then
    echo "FAIL: '$*' succeeded"; exit 1
  fi
  echo "$msg" | grep -qF -- "$pattern" || { echo "FAIL: '$*' said: $msg (expected: $pattern)"; exit 1; }
}
expect_error "drafter spec file '$dir/none.spec': cannot open it" --draft "@$dir/none.spec"
echo "hcascade(maxgarm * 2)" > "$dir/bad.spec"
expect_error "--draft @$dir/bad.spec: drafter spec 'hcascade(maxgarm*2)': unknown drafter 'maxgarm'" \
  --draft "@$dir/bad.spec"
echo "ok"
