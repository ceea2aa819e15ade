#!/usr/bin/env bash
# Builds DIR/flashinfer-bundle.zip (default DIR = .whl): the FlashInfer baseline of
# bench/decode_attention.py, ready to run on the GPU machine with no compiling there and small
# enough to travel beside half of the default model in one device call (64 MiB a call).
#   tools/gpu/flashinfer_bundle.sh [DIR]        (prepare_carry.sh --flashinfer runs it)
#
# Why: FlashInfer compiles its kernels on first use (JIT, minutes of device time), and its
# wheels (~37 MB with the dependencies the GPU image lacks) do not fit beside a model half.
# So the kernels the benchmark uses are compiled here, with this machine's nvcc, for sm_90a,
# and placed where FlashInfer looks for ahead-of-time builds (flashinfer/data/aot/<module>/
# <module>.so: it loads those without building). The bundle holds:
#  - FlashInfer's Python package without its JIT sources (cutlass, cccl, headers; of csrc only
#    the four files that generating the batch-decode module reads, since FlashInfer renders its
#    templates before looking for the AOT build);
#  - tvm-ffi (FlashInfer's kernel loader) for CPython 3.12, without its headers and sources;
#  - the AOT modules: BatchDecodeWithPagedKVCacheWrapper's batch-decode module for fp16 and
#    bf16, head_dim 128, int32 page table, no RoPE / sliding window / soft-cap: exactly what
#    bench/decode_attention.py's flashinfer_wrapper() plans (change both together).
# tools/gpu/run_all.sh unpacks it into /tmp/site (on PYTHONPATH). If a module does not load
# there, FlashInfer falls back to JIT, which fails without the sources: the benchmark then
# records "flashinfer plan failed: ..." as the skip reason, and a later session carries the
# full wheels instead (prepare_carry.sh --flashinfer-wheels).
#
# Needs here: nvcc (/usr/local/cuda), network for pip. FlashInfer imports PyTorch, so the local
# FlashInfer lives in a virtual environment (SPW_FLASHINFER_VENV, default
# ~/.cache/spillway/flashinfer-venv) that pip fills with PyTorch and its CUDA libraries once
# (a few GB, about two minutes); later runs reuse it. Compiling the two modules: ~45 s on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-.whl}
FI_VERSION=0.6.18.post1
TVM_FFI_VERSION=0.1.15.post2
venv=${SPW_FLASHINFER_VENV:-$HOME/.cache/spillway/flashinfer-venv}
export PATH="$PATH:/usr/local/cuda/bin"
command -v nvcc >/dev/null || { echo "flashinfer_bundle: nvcc not found (CUDA toolkit needed)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. a local FlashInfer of the version the GPU run uses
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/python" -c "import flashinfer, sys; sys.exit(flashinfer.__version__ != '$FI_VERSION')" 2>/dev/null; then
  echo "flashinfer_bundle: installing flashinfer-python==$FI_VERSION (and PyTorch) into $venv"
  "$venv/bin/pip" install -q "flashinfer-python==$FI_VERSION" "apache-tvm-ffi==$TVM_FFI_VERSION"
fi

# 2. the batch-decode modules, compiled for sm_90a into a scratch workspace
echo "flashinfer_bundle: compiling the batch-decode modules (fp16, bf16; head_dim 128) for sm_90a"
FLASHINFER_WORKSPACE_BASE="$work/ws" FLASHINFER_CUDA_ARCH_LIST="9.0" MAX_JOBS="$(nproc)" \
  "$venv/bin/python" - "$work/aot" <<'EOF'
import pathlib, shutil, sys
import torch
from flashinfer.jit import gen_batch_decode_module
aot = pathlib.Path(sys.argv[1])
for dt in (torch.float16, torch.bfloat16):
    # (q, kv, o dtypes, page-table index dtype, head_dim qk / vo, posenc NONE, sliding window, soft-cap):
    # what BatchDecodeWithPagedKVCacheWrapper.plan asks for in bench/decode_attention.py
    spec = gen_batch_decode_module(dt, dt, dt, torch.int32, 128, 128, 0, False, False)
    spec.build()
    (aot / spec.name).mkdir(parents=True)
    shutil.copy(spec.jit_library_path, aot / spec.name / f"{spec.name}.so")
    print("  built", spec.name)
EOF

# 3. the runtime files, for CPython 3.12 (the GPU image's python3)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  -d "$work/wheels" "flashinfer-python==$FI_VERSION" "apache-tvm-ffi==$TVM_FFI_VERSION"
mkdir -p "$work/tree"
for w in "$work"/wheels/*.whl; do python3 -m zipfile -e "$w" "$work/tree"; done
fi="$work/tree/flashinfer"
rm -rf "$fi/data/cutlass" "$fi/data/cccl" "$fi/data/include" "$fi/data/spdlog"
mv "$fi/data/csrc" "$work/csrc" && mkdir "$fi/data/csrc"
for f in batch_decode_customize_config.jinja batch_decode_kernel_inst.jinja batch_decode.cu batch_decode_jit_binding.cu; do
  cp "$work/csrc/$f" "$fi/data/csrc/"
done
rm -rf "$work/tree/tvm_ffi/include" "$work/tree/tvm_ffi/src" "$work/tree/tvm_ffi/cython" "$work/tree/tvm_ffi/3rdparty"
mkdir -p "$fi/data/aot" && cp -r "$work/aot/." "$fi/data/aot/"
mkdir -p "$out"
zip_path="$(realpath "$out")/flashinfer-bundle.zip"
rm -f "$zip_path"
(cd "$work/tree" && python3 - "$zip_path" <<'EOF'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    for top in sorted(os.listdir(".")):
        for root, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for f in sorted(files):
                z.write(os.path.join(root, f))
EOF
)
du -h "$out/flashinfer-bundle.zip"
