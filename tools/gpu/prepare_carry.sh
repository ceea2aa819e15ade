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
# --flashinfer: also downloads the FlashInfer baseline for the attention benchmarks into .whl/
# (flashinfer-python 0.6.18.post1, 18 MB, and the four of its dependencies the GPU image lacks:
# apache-tvm-ffi, cuda-tile, nccl4py, nvidia-cudnn-frontend; ~37 MB in all, checked to import
# under Python 3.12 + torch 2.11). run_all.sh installs .whl/*.whl when carried; FlashInfer
# compiles its kernels on first use there (minutes of device time: carry .whl only in the
# call that runs the attention benchmarks).
set -euo pipefail
cd "$(dirname "$0")/../.."
tools/setup_deps.sh >/dev/null
rm -rf .carry && mkdir -p .carry
cp -r /usr/include/fmt .carry/fmt
cp -r /usr/src/googletest .carry/googletest
git rev-parse HEAD > .carry/commit.txt
git diff --quiet HEAD || echo "+dirty" >> .carry/commit.txt
du -sh .carry
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
rm -rf .carry-model-1 .carry-model-2
if [ -f "$model" ]; then
  mkdir -p .carry-model-1 .carry-model-2
  size=$(stat -c %s "$model")
  half=$(( (size + 1) / 2 ))
  head -c "$half" "$model" > .carry-model-1/part-a
  tail -c +"$((half + 1))" "$model" > .carry-model-2/part-b
  [ -f "$model.bigram" ] && cp "$model.bigram" .carry-model-2/
  du -sh .carry-model-1 .carry-model-2
fi
if [ "${1:-}" = "--flashinfer" ]; then
  rm -rf .whl && mkdir -p .whl
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl flashinfer-python==0.6.18.post1 "apache-tvm-ffi>=0.1.6,<0.2" \
    cuda-tile nvidia-cudnn-frontend nccl4py
  du -sh .whl
fi
echo "carry ready: README.md, \"Running on a GPU\", gives the two device calls (call 1 carries"
echo "[\".carry\", \".carry-model-1\"], call 2 at once [\".carry-model-2\"]; .whl, if present, replaces"
echo "the model half in call 1: one call carries at most 64 MiB)"
