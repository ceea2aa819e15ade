#!/usr/bin/env bash
# README's run command: installs what is needed, builds the `spillway` CLI, fetches the default
# model and runs the cascade speculative-decoding demo next to plain decoding (or, in a build
# without the decoder, the self-check that lists the kernels and whether a GPU is present).
# Extra arguments go to `spillway generate` (e.g. --prompt "..." --max-tokens 64).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/cuda/bin"
tools/setup_deps.sh
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90}" >/dev/null
cmake --build "$build" -j "${JOBS:-$(nproc)}" --target spillway
"$build/tools/spillway" selfcheck
if "$build/tools/spillway" generate --help >/dev/null 2>&1; then
  tools/fetch_model.sh
  if [ $# -gt 0 ]; then
    exec "$build/tools/spillway" generate "$@"
  fi
  # Two prompts: open-ended writing, where the answer shares little with the prompt, and an
  # edit of the prompt's own text, where Max-Gram finds most of the answer in the prompt.
  draft=${SPW_DEMO_DRAFT:-maxgram}
  echo "== 1/2: open-ended answer (little of it repeats the prompt) =="
  "$build/tools/spillway" generate --max-tokens 160 --draft "$draft" --compare \
    --prompt "Write a Python function that checks whether a number is prime, then explain it."
  echo
  echo "== 2/2: an edit of the prompt's text (most of the answer is in the prompt) =="
  "$build/tools/spillway" generate --max-tokens 160 --draft "$draft" --compare --prompt "Fix the spelling \
mistakes in this paragraph and print the corrected paragraph:

The quick brown fox jumpd over the lazy dog. Every mornning, the fox would run through the feild, \
looking for somthing to eat. The dog, who was very tired, never noticed the fox. One day, the dog \
finaly woke up and chased the fox acros the feild until they both fell asleep under a big tree."
fi
