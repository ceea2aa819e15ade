#!/usr/bin/env bash
# Run on the CPU machine before a GPU session: fills the git-ignored folder .carry/ with what
# the GPU machine's image lacks (it has nvcc, CMake, ninja, PyTorch, but no fmt and no
# GoogleTest, and reaches no network), plus the commit id for the results files.
#   .carry/fmt/        Debian's fmt headers (used header-only there)
#   .carry/googletest/ GoogleTest sources (built there)
#   .carry/commit.txt  git commit of the tree being measured
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
echo "carry ready: pass carry=[\".carry\"] (and \".whl\" if present) to the device call"
