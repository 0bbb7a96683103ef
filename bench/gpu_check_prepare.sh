#!/usr/bin/env bash
# Prepare .whl/ for bench/gpu_check.sh on a GPU machine that reaches no package index (run this here first).
# It holds, for that machine's Python (3.12, manylinux x86_64):
#   - the wheels of what oi_local and llama-cpp-python's server need and that machine's image lacks, at the
#     versions installed in this .venv (gguf, platformdirs, fastapi, uvicorn, pydantic, ...);
#   - llama-cpp-python's sdist, slimmed: without its git history and the llama.cpp files a wheel build never
#     reads (test vocabularies, docs, media, benchmarks, tests, examples), so it fits a 64 MiB transfer.
# Usage: bench/gpu_check_prepare.sh [PYTHON_VERSION]   (default 3.12)
set -euo pipefail
cd "$(dirname "$0")/.."
py_version="${1:-3.12}"
out=.whl
mkdir -p "$out"
pip=(.venv/bin/python -m pip --disable-pip-version-check)
names=(gguf platformdirs fastapi starlette uvicorn pydantic pydantic-core pydantic-settings python-dotenv
       sse-starlette starlette-context diskcache annotated-types annotated-doc typing-inspection)
pins=()
for name in "${names[@]}"; do
  version=$("${pip[@]}" show "$name" 2>/dev/null | sed -n 's/^Version: //p')
  [ -n "$version" ] || { echo "gpu_check_prepare: $name is not installed in .venv (run scripts/install.sh first)" >&2; exit 1; }
  pins+=("$name==$version")
done
"${pip[@]}" download --quiet --no-deps --only-binary=:all: --python-version "$py_version" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$out" "${pins[@]}"

version=$("${pip[@]}" show llama-cpp-python | sed -n 's/^Version: //p')
sdist="$out/llama_cpp_python-$version.tar.gz"
if [ ! -f "$sdist" ]; then
  work=$(mktemp -d)
  "${pip[@]}" download --quiet --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$work"
  tar -xzf "$work/llama_cpp_python-$version.tar.gz" -C "$work"
  src="$work/llama_cpp_python-$version"
  rm -rf "$src/.git" "$src/examples/notebooks"
  for part in models docs media benches .github .devops tests examples gguf-py scripts conversion; do
    rm -rf "$src/vendor/llama.cpp/$part"
  done
  tar -czf "$sdist" -C "$work" "llama_cpp_python-$version"
  rm -rf "$work"
fi
du -ch "$out"/* | tail -1 | sed 's/^/gpu_check_prepare: .whl holds /'
ls "$out"
