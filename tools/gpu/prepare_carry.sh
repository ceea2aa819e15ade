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
#                      [".carry-model-2"] in the next (paths carried before stay on a warm
#                      machine); tools/gpu/run_all.sh joins them into models/.
# Optional wheels (FlashInfer for the attention baselines) go to .whl/ (see README).
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
echo "carry ready: pass carry=[\".carry\", \".carry-model-1\"] (and \".whl\" if present) to the first device"
echo "call, carry=[\".carry-model-2\"] to the second (run_all.sh joins the model halves)"
