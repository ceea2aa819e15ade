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
  if [ $# -eq 0 ]; then
    set -- --prompt "Write a Python function that checks whether a number is prime, then explain it." \
           --max-tokens 160 --draft "${SPW_DEMO_DRAFT:-maxgram}" --compare
  fi
  "$build/tools/spillway" generate "$@"
fi
