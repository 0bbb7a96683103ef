#!/usr/bin/env bash
# The GPU device check, one command on a machine with an NVIDIA GPU and the CUDA toolkit (about 8 minutes on an
# H200 machine with 16 cores; no package index needed):
#   1. builds the CUDA wheel of llama-cpp-python with scripts/install.sh --gpu (the machine's own choice);
#   2. runs bench/gpu_check.py: fit vs allocation, auto vs --n_gpu_layers -1 tok/s, partial offload under a
#      VRAM budget imposed through the fit (and the 70B shape when time is left).
# Results: $OUT/gpu_check.md (a section for bench/RESULTS.md), gpu_check.json, build.json, gpu_check.log.
#
# Before: bench/gpu_check_prepare.sh on a machine with a package index fills .whl/ (the wheels the GPU machine's
# image lacks, and a slimmed llama-cpp-python sdist: 14 MB together). Through the device tool:
#   run(command="bench/gpu_check.sh", carry=[".whl"], timeout_s=600)
# Variables: OUT (default bench/.work/gpu_check), PYTHON (default python3), GPU_CHECK_SECONDS (default 560).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-bench/.work/gpu_check}"
mkdir -p "$out"
exec > >(tee "$out/gpu_check.log") 2>&1
started=$SECONDS
py="${PYTHON:-python3}"
total="${GPU_CHECK_SECONDS:-560}"

ls .whl/llama_cpp_python-*.tar.gz >/dev/null 2>&1 || { echo "gpu_check: .whl/ has no llama-cpp-python sdist; run bench/gpu_check_prepare.sh first." >&2; exit 2; }
site="${TMPDIR:-/tmp}/oi_gpu_check_site"
"$py" -m pip install --quiet --no-index --no-deps --no-compile --upgrade --target "$site" .whl/*.whl
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ ! -x .venv/bin/python ]; then  # install.sh builds with .venv's Python: here, the machine's own (its cmake, ninja)
  mkdir -p .venv/bin
  ln -s "$(command -v "$py")" .venv/bin/python
fi

export LLAMA_CPP_SDIST
LLAMA_CPP_SDIST=$(ls .whl/llama_cpp_python-*.tar.gz | head -1)
export LLAMA_CPP_NO_BUILD_ISOLATION=1 PIP_NO_INDEX=1 XDG_CACHE_HOME="${TMPDIR:-/tmp}/oi_gpu_check_cache"
scripts/install.sh --gpu --wheel-only | tee "$out/build.txt"
wheel=$(tail -1 "$out/build.txt")
cp "$(dirname "$wheel")/build.json" "$out/build.json"
"$py" -m pip install --quiet --no-index --no-deps --no-compile --upgrade --target "$site" "$wheel"

left=$(( total - (SECONDS - started) ))
echo "gpu_check: wheel built in $((SECONDS - started)) s; $left s left for the checks"
"$py" bench/gpu_check.py --out "$out" --build-json "$out/build.json" --seconds "$left"
