#!/usr/bin/env bash
# Installs what Spillway's build, tests and demo need, skipping what is already present.
# Idempotent; needs root (or sudo) for the Debian packages. Used by tools/test.sh, tools/demo.sh
# and CI. The CUDA toolkit is optional: without nvcc the CPU-only build is made.
set -euo pipefail

debs=(cmake g++ make clang libclang-rt-14-dev libfmt-dev libgtest-dev libgmock-dev python3 python3-pip)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup_deps: installing Debian packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "setup_deps: Debian packages present"
fi

# Python packages for the independent NumPy reference of the runtime and for plots.
py_missing=()
python3 -c "import numpy" 2>/dev/null || py_missing+=(numpy)
python3 -c "import gguf" 2>/dev/null || py_missing+=(gguf)
python3 -c "import matplotlib" 2>/dev/null || py_missing+=(matplotlib)
if ((${#py_missing[@]})); then
  echo "setup_deps: installing Python packages: ${py_missing[*]}"
  python3 -m pip install -q "${py_missing[@]}" 2>&1 | grep -v "WARNING: Running pip as" || true
else
  echo "setup_deps: Python packages present"
fi
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  echo "setup_deps: CUDA toolkit found (GPU targets will be built)"
else
  echo "setup_deps: no CUDA toolkit: CPU-only build"
fi
