#!/usr/bin/env bash
# Builds one of the project's libFuzzer targets with clang's libFuzzer + AddressSanitizer and
# runs it for FUZZ_SECONDS (default 20) from a seed corpus:
#   gguf  runtime/gguf_parse_fuzz.cpp (the GGUF reader, model config, tokenizer), seeded with
#         small GGUF files written by `spillway tinymodel`
#   json  decode/json_line_fuzz.cpp (the JSON reader of --prompts / --replay), seeded with the
#         lines of bench/prompts/*.jsonl and a recorded `generate --json` run
#   tokenizer  tests/runtime/tokenizer_text_fuzz.cpp (encode/decode round trips of any text on
#         the committed tokenizer fixtures), seeded with the fixtures' test strings
# Usage: run_fuzz.sh gguf|json|tokenizer SOURCE_DIR SPILLWAY_EXE WORK_DIR
set -euo pipefail
target=$1 src=$2 exe=$3 work=$4
seconds=${FUZZ_SECONDS:-20}
if ! command -v clang++ >/dev/null; then echo "SKIP: clang++ not installed (tools/setup_deps.sh installs it)"; exit 0; fi
rm -rf "$work" && mkdir -p "$work/corpus"
case $target in
  gguf)
    sources=("$src/runtime/gguf_parse_fuzz.cpp" "$src/runtime/gguf.cpp" "$src/runtime/dequant.cpp"
             "$src/runtime/llama_weights.cpp" "$src"/runtime/tokenizer*.cpp "$src/runtime/unicode.cpp"
             "$src/runtime/unicode_tables.cpp")
    max_len=65536
    "$exe" tinymodel --out "$work/corpus/tiny_q4_1.gguf" --type q4_1 --vocab 260 --hidden 32 --heads 2 --kv-heads 1 \
      --inter 32 --layers 1 >/dev/null
    "$exe" tinymodel --out "$work/corpus/tiny_q8_0.gguf" --type q8_0 --vocab 260 --hidden 32 --heads 2 --kv-heads 2 \
      --inter 64 --layers 1 --arch qwen2 --untied >/dev/null;;
  json)
    sources=("$src/decode/json_line_fuzz.cpp" "$src/decode/json_line.cpp" "$src/runtime/unicode.cpp"
             "$src/runtime/unicode_tables.cpp")
    max_len=4096
    n=0
    for f in "$src"/bench/prompts/*.jsonl; do
      while IFS= read -r line; do n=$((n + 1)); printf '%s' "$line" > "$work/corpus/prompt_$n.json"; done < "$f"
    done
    printf '%s' '{"id": "a", "tokens": [1, 22, -3, 4e2], "text": "\u00e9\ud83d\ude00\n", "x": [true, null, 0.5]}' \
      > "$work/corpus/recorded.json";;
  tokenizer)
    sources=("$src/tests/runtime/tokenizer_text_fuzz.cpp" "$src"/runtime/tokenizer*.cpp "$src/runtime/unicode.cpp"
             "$src/runtime/unicode_tables.cpp" "$src/runtime/gguf.cpp" "$src/runtime/dequant.cpp" "$src/decode/json_line.cpp")
    max_len=4096
    export SPW_TOKENIZER_DATA="$src/tests/data/tokenizer"
    # one seed per fixture string, for each tokenizer (the first byte selects it, see the target)
    python3 - "$src/tests/data/tokenizer/smollm2_cases.json" "$work/corpus" <<'PY'
import json, sys
cases = json.load(open(sys.argv[1]))["cases"]
texts = sorted({c["text"] for c in cases})
for i, t in enumerate(texts):
    for sel in (0, 1, 2, 3, 4, 7, 8, 15, 16):  # 7, 15: the SPW_TOKENIZER_GGUF model when set
        open(f"{sys.argv[2]}/case_{i}_{sel}", "wb").write(bytes([sel]) + t.encode())
PY
    ;;
  *) echo "run_fuzz.sh: unknown target '$target' (gguf, json or tokenizer)"; exit 2;;
esac
clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address -DSPW_HAVE_CUDA=0 -I"$src" "${sources[@]}" -lfmt -o "$work/fuzz"
"$work/fuzz" -max_total_time="$seconds" -max_len="$max_len" -rss_limit_mb=2048 -print_final_stats=1 \
  "$work/corpus" 2>&1 | tail -15
echo "fuzz ok"
