#!/usr/bin/env bash
# Builds runtime/gguf_parse_fuzz.cpp with clang's libFuzzer + AddressSanitizer and runs it for
# FUZZ_SECONDS (default 20) from a seed corpus of small GGUF files written by `spillway
# tinymodel`. Usage: run_gguf_fuzz.sh SOURCE_DIR SPILLWAY_EXE WORK_DIR
set -euo pipefail
src=$1 exe=$2 work=$3
seconds=${FUZZ_SECONDS:-20}
if ! command -v clang++ >/dev/null; then echo "SKIP: clang++ not installed (tools/setup_deps.sh installs it)"; exit 0; fi
rm -rf "$work" && mkdir -p "$work/corpus"
clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address -DSPW_HAVE_CUDA=0 -I"$src" \
  "$src/runtime/gguf_parse_fuzz.cpp" "$src/runtime/gguf.cpp" "$src/runtime/dequant.cpp" "$src/runtime/llama_weights.cpp" \
  "$src"/runtime/tokenizer*.cpp "$src/runtime/unicode.cpp" "$src/runtime/unicode_tables.cpp" -lfmt -o "$work/gguf_fuzz"
"$exe" tinymodel --out "$work/corpus/tiny_q4_1.gguf" --type q4_1 --vocab 260 --hidden 32 --heads 2 --kv-heads 1 \
  --inter 32 --layers 1 >/dev/null
"$exe" tinymodel --out "$work/corpus/tiny_q8_0.gguf" --type q8_0 --vocab 260 --hidden 32 --heads 2 --kv-heads 2 \
  --inter 64 --layers 1 --arch qwen2 --untied >/dev/null
"$work/gguf_fuzz" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 \
  "$work/corpus" 2>&1 | tail -15
echo "fuzz ok"
