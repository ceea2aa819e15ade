#!/usr/bin/env bash
# Run on the CPU machine before a GPU session: fills the git-ignored folder .carry/ with what
# the GPU machine's image lacks (it has nvcc, CMake, ninja, PyTorch, but no fmt and no
# GoogleTest, and reaches no network), plus the commit id for the results files.
#   .carry/fmt/        Debian's fmt headers (used header-only there)
#   .carry/googletest/ GoogleTest sources (built there)
#   .carry/commit.txt  git commit of the tree being measured
#   .carry-model-1/, .carry-model-2/  the two halves of the default model (and its .bigram
#                      table when built), when models/ has it: one device call carries at most
#                      64 MiB, so carry [".carry", ".carry-model-1"] in one call and
#                      [".carry-model-2"] in the next, issued at once (a machine stays warm
#                      30 s); tools/gpu/run_all.sh joins them into models/.
# --flashinfer: also builds .whl/flashinfer-bundle.zip (tools/gpu/flashinfer_bundle.sh: FlashInfer
# 0.6.18.post1 with the decode benchmark's kernels compiled here ahead of time, ~7 MB, nothing to
# compile there); carry [".carry", ".carry-model-1", ".whl"] in call 1 (~60 MiB in all).
# --flashinfer-wheels: instead downloads FlashInfer's full wheels into .whl/ (flashinfer-python
# 0.6.18.post1, 18 MB, and the four of its dependencies the GPU image lacks: apache-tvm-ffi,
# cuda-tile, nccl4py, nvidia-cudnn-frontend; ~37 MB in all, checked to import under Python 3.12
# + torch 2.11): FlashInfer then compiles its kernels on first use there (minutes of device
# time), and .whl does not fit beside a model half: carry it in a call of its own.
# run_all.sh installs whichever it finds in .whl/.
set -euo pipefail
cd "$(dirname "$0")/../.."
tools/setup_deps.sh >/dev/null
rm -rf .carry && mkdir -p .carry
cp -r /usr/include/fmt .carry/fmt
cp -r /usr/src/googletest .carry/googletest
git rev-parse HEAD > .carry/commit.txt
git diff --quiet HEAD || echo "+dirty" >> .carry/commit.txt
du -sh .carry
if [ "${1:-}" = "--flashinfer" ]; then
  rm -rf .whl && mkdir -p .whl
  tools/gpu/flashinfer_bundle.sh .whl
fi
if [ "${1:-}" = "--flashinfer-wheels" ]; then
  rm -rf .whl && mkdir -p .whl
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl flashinfer-python==0.6.18.post1 "apache-tvm-ffi>=0.1.6,<0.2" \
    cuda-tile nvidia-cudnn-frontend nccl4py
  du -sh .whl
fi
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
rm -rf .carry-model-1 .carry-model-2
if [ -f "$model" ]; then
  # The halves even out what each call carries: half 2 also takes the .bigram table, half 1
  # travels with .carry and (--flashinfer) the bundle.
  mkdir -p .carry-model-1 .carry-model-2
  size=$(stat -c %s "$model")
  bigram=$( [ -f "$model.bigram" ] && stat -c %s "$model.bigram" || echo 0)
  extra1=$(( $(du -sb .carry | cut -f1) + $( [ -f .whl/flashinfer-bundle.zip ] && stat -c %s .whl/flashinfer-bundle.zip || echo 0) ))
  half=$(( (size + bigram - extra1 + 1) / 2 ))
  [ "$half" -lt 1 ] && half=1
  [ "$half" -ge "$size" ] && half=$((size - 1))
  head -c "$half" "$model" > .carry-model-1/part-a
  tail -c +"$((half + 1))" "$model" > .carry-model-2/part-b
  [ -f "$model.bigram" ] && cp "$model.bigram" .carry-model-2/
  du -sh .carry-model-1 .carry-model-2
fi
echo "carry ready: README.md, \"Running on a GPU\", gives the two device calls (call 1 carries"
echo "[\".carry\", \".carry-model-1\"] (+ \".whl\" with --flashinfer), call 2 at once [\".carry-model-2\"];"
echo "one call carries at most 64 MiB)"
du -sh --total $(git ls-files) .carry .carry-model-1 .whl 2>/dev/null | tail -1 | sed 's/total/call 1 carries (with the tracked tree)/'
du -sh --total $(git ls-files) .carry-model-2 2>/dev/null | tail -1 | sed 's/total/call 2 carries (with the tracked tree)/'

