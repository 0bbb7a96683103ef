"""scripts/install.sh: the llama.cpp build it chooses for a machine (stand-in GPU programs on an isolated PATH,
printing their real outputs), the wheel cache key, and a build's progress and record (a stand-in sdist)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import standins

REPO = Path(__file__).resolve().parent.parent
INSTALL = REPO / "scripts" / "install.sh"
H200_FLAGS = "-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_CUDA_FA=OFF -DLLAVA_BUILD=OFF"


@pytest.fixture
def machine(tmp_path):
    """A bin folder holding only ordinary tools; add stand-ins to it. Returns (bin folder, environment)."""
    bin_dir = standins.isolated_path(tmp_path / "bin")
    env = {
        "PATH": str(bin_dir), "HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "CUDA_HOME": str(tmp_path / "no-cuda"),  # not this machine's /usr/local/cuda
        "LANG": "C.UTF-8",
    }
    return bin_dir, env


def install(env: dict, *args: str, extra: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True, env={**env, **(extra or {})},
                          timeout=120)


def choice(done: subprocess.CompletedProcess) -> tuple[str, str, str]:
    """(backend, CMAKE_ARGS, the whole output) from a dry run."""
    assert done.returncode == 0, done.stdout + done.stderr
    backend = re.search(r"llama-cpp-python build: (\w+) — ", done.stdout).group(1)
    cmake_args = re.search(r'CMAKE_ARGS="([^"]*)"', done.stdout).group(1)
    return backend, cmake_args, done.stdout


def test_a_machine_without_a_gpu_gets_the_portable_cpu_build(machine):
    bin_dir, env = machine
    backend, args, out = choice(install(env, "--dry-run"))
    assert (backend, args) == ("cpu", "-DGGML_NATIVE=OFF")
    assert "no GPU that llama.cpp can use was found" in out
    assert "not built yet" in out and "about" in out  # the estimate of a build here


def test_an_h200_with_the_cuda_toolkit_gets_cuda_for_its_own_architecture_only(machine):
    bin_dir, env = machine
    standins.nvidia_smi(bin_dir)
    nvcc = standins.nvcc(bin_dir)
    backend, args, out = choice(install(env, "--dry-run"))
    assert backend == "cuda" and args == H200_FLAGS
    assert "NVIDIA H200 (compute capability 9.0) with the CUDA toolkit 13.0" in out
    assert str(nvcc) in out and "sm_90 only" in out
    assert "0.3.36-cuda-" in out  # the cache folder names the backend


def test_nvcc_is_found_in_cuda_home_when_it_is_not_on_path(machine, tmp_path):
    bin_dir, env = machine
    standins.nvidia_smi(bin_dir)
    cuda = tmp_path / "cuda-13.0"
    (cuda / "bin").mkdir(parents=True)
    standins.nvcc(cuda / "bin")
    backend, args, out = choice(install(env, "--dry-run", extra={"CUDA_HOME": str(cuda)}))
    assert backend == "cuda" and str(cuda / "bin" / "nvcc") in out


def test_gpus_of_two_architectures_are_both_built(machine):
    bin_dir, env = machine
    standins.compute_caps(bin_dir, "8.6", "8.9", "8.6")
    standins.nvcc(bin_dir)
    backend, args, _ = choice(install(env, "--dry-run"))
    assert backend == "cuda" and "-DCMAKE_CUDA_ARCHITECTURES=86;89 " in args


def test_an_nvidia_gpu_without_the_toolkit_gets_the_cpu_build_and_one_line_on_what_to_install(machine):
    bin_dir, env = machine
    standins.nvidia_smi(bin_dir)
    backend, args, out = choice(install(env, "--dry-run"))
    assert (backend, args) == ("cpu", "-DGGML_NATIVE=OFF")
    assert "NVIDIA H200 is here, but not the CUDA toolkit" in out
    hints = [line for line in out.splitlines() if "install the CUDA toolkit" in line]
    assert len(hints) == 1 and "scripts/install.sh --gpu" in hints[0]


def test_gpu_insists_and_says_what_is_missing(machine):
    bin_dir, env = machine
    standins.nvidia_smi(bin_dir)
    done = install(env, "--gpu", "--dry-run")
    assert done.returncode == 1
    assert "--gpu" in done.stderr and "CUDA toolkit" in done.stderr and "nvcc" in done.stderr
    assert "Traceback" not in done.stderr
    standins.nvcc(bin_dir)
    backend, args, _ = choice(install(env, "--gpu", "--dry-run"))
    assert backend == "cuda"
    empty = standins.isolated_path(bin_dir.parent / "empty")
    done = install({**env, "PATH": str(empty)}, "--gpu", "--dry-run")
    assert done.returncode == 1 and "no GPU" in done.stderr


def test_cpu_forces_the_cpu_build_on_a_gpu_machine(machine):
    bin_dir, env = machine
    standins.nvidia_smi(bin_dir)
    standins.nvcc(bin_dir)
    backend, args, out = choice(install(env, "--cpu", "--dry-run"))
    assert (backend, args) == ("cpu", "-DGGML_NATIVE=OFF") and "--cpu" in out
    done = install(env, "--cpu", "--gpu", "--dry-run")
    assert done.returncode == 2 and "contradict" in done.stderr


def test_amd_with_rocm_gets_hip_for_its_gfx_target(machine, tmp_path):
    bin_dir, env = machine
    standins.rocminfo(bin_dir)
    standins.hipconfig(bin_dir, tmp_path / "opt-rocm")
    backend, args, out = choice(install(env, "--dry-run"))
    assert backend == "hip"
    assert args == "-DGGML_HIP=ON -DGPU_TARGETS=gfx1100 -DLLAVA_BUILD=OFF"
    assert "Radeon RX 7900 XTX (gfx1100)" in out


def test_amd_without_hip_gets_the_cpu_build_and_a_hint(machine):
    bin_dir, env = machine
    standins.rocminfo(bin_dir)
    backend, _, out = choice(install(env, "--dry-run"))
    assert backend == "cpu" and "HIP SDK" in out


def test_apple_silicon_gets_metal_and_an_intel_mac_the_cpu_build(machine):
    bin_dir, env = machine
    standins.uname(bin_dir, "Darwin", "arm64")
    backend, args, out = choice(install(env, "--dry-run"))
    assert (backend, args) == ("metal", "-DGGML_METAL=on") and "Apple Silicon" in out
    standins.uname(bin_dir, "Darwin", "x86_64")
    backend, args, _ = choice(install(env, "--dry-run"))
    assert (backend, args) == ("cpu", "-DGGML_NATIVE=OFF -DGGML_METAL=OFF")


def test_a_gpu_on_the_pci_bus_without_its_driver_gets_a_hint(machine):
    bin_dir, env = machine
    standins.lspci(bin_dir, "lspci_nvidia.txt")
    backend, _, out = choice(install(env, "--dry-run"))
    assert backend == "cpu" and "GH100 [H200 SXM 141GB]" in out and "NVIDIA driver" in out
    standins.lspci(bin_dir, "lspci_amd.txt")
    backend, _, out = choice(install(env, "--dry-run"))
    assert backend == "cpu" and "Navi 31" in out and "install ROCm" in out
    standins.lspci(bin_dir, "lspci_no_gpu.txt")
    backend, _, out = choice(install(env, "--dry-run"))
    assert backend == "cpu" and "install" not in out.split("CMAKE_ARGS")[0].split("build: cpu")[1]


def test_cmake_args_set_by_the_user_are_used_as_given(machine):
    bin_dir, env = machine
    standins.nvidia_smi(bin_dir)
    standins.nvcc(bin_dir)
    backend, args, out = choice(install(env, "--dry-run", extra={"CMAKE_ARGS": "-DGGML_CUDA=on -DGGML_CUDA_F16=on"}))
    assert (backend, args) == ("cuda", "-DGGML_CUDA=on -DGGML_CUDA_F16=on") and "used as given" in out
    done = install(env, "--gpu", "--dry-run", extra={"CMAKE_ARGS": "-DGGML_BLAS=ON"})
    assert done.returncode == 1 and "unset it" in done.stderr


def test_the_cache_folder_depends_on_the_choice(machine):
    bin_dir, env = machine
    folder = re.compile(r"(\S+/oi_local/wheels/\S+)")
    cpu = folder.search(install(env, "--dry-run").stdout).group(1)
    standins.nvidia_smi(bin_dir)
    standins.nvcc(bin_dir)
    cuda = folder.search(install(env, "--dry-run").stdout).group(1)
    forced = folder.search(install(env, "--cpu", "--dry-run").stdout).group(1)
    assert cpu != cuda and forced == cpu
    assert "-cpu-" in cpu and "-cuda-" in cuda
    standins.nvcc(bin_dir, "nvcc_13_0_version.txt")  # the same toolkit: the same folder
    assert folder.search(install(env, "--dry-run").stdout).group(1) == cuda


def test_unknown_options_are_refused_with_the_usage(machine):
    _, env = machine
    done = install(env, "--gpus")
    assert done.returncode == 2 and "--help" in done.stderr
    done = install(env, "--help")
    assert done.returncode == 0 and "--dry-run" in done.stdout and "--wheel-only" in done.stdout


# --- a build: progress, record, cache ---------------------------------------------------------------------


@pytest.fixture
def fake_sdist(tmp_path):
    source = tmp_path / "sdist"
    shutil.copytree(Path(__file__).parent / "fixtures" / "fake_llama_sdist", source)
    (source / "version.txt").write_text("0.0.1\n")
    (source / "fail.txt").write_text("ok\n")
    return source


@pytest.mark.timeout(300)
def test_a_build_shows_its_steps_records_itself_and_is_cached(tmp_path, fake_sdist):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "LLAMA_CPP_VERSION": "0.0.1",
           "LLAMA_CPP_SDIST": str(fake_sdist), "CMAKE_BUILD_PARALLEL_LEVEL": "2", "CMAKE_ARGS": "-DGGML_NATIVE=OFF",
           "TMPDIR": str(tmp_path)}
    done = subprocess.run(["bash", str(INSTALL), "--wheel-only"], capture_output=True, text=True, env=env, timeout=280)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    build_line = next(i for i, line in enumerate(lines) if "building llama-cpp-python" in line)
    assert re.search(r"about \d+ (seconds|minutes) on this machine \(2 jobs, load [0-9.]+\)", lines[build_line])
    progress = [line for line in lines[build_line:] if re.search(r"\d+% \(compiling \d+/8", line)]
    assert len(progress) >= 4  # every 10 % without a terminal: 12 %, 25 %, ... 100 %
    assert "100% (compiling 8/8" in progress[-1]
    wheel = Path(lines[-1])
    assert wheel.is_file() and wheel.name.startswith("llama_cpp_python-0.0.1-")
    record = json.loads((wheel.parent / "build.json").read_text())
    assert record["backend"] == "cpu" and record["cmake_args"] == "-DGGML_NATIVE=OFF" and record["jobs"] == 2
    assert isinstance(record["build_seconds"], int) and record["why"]
    again = subprocess.run(["bash", str(INSTALL), "--wheel-only"], capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0 and "building" not in again.stdout and Path(again.stdout.splitlines()[-1]) == wheel


@pytest.mark.timeout(300)
def test_a_failed_build_shows_the_end_of_its_log_and_caches_nothing(tmp_path, fake_sdist):
    (fake_sdist / "fail.txt").write_text("FAIL\n")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "LLAMA_CPP_VERSION": "0.0.2",
           "LLAMA_CPP_SDIST": str(fake_sdist), "CMAKE_ARGS": "-DGGML_NATIVE=OFF", "TMPDIR": str(tmp_path)}
    done = subprocess.run(["bash", str(INSTALL), "--wheel-only"], capture_output=True, text=True, env=env, timeout=280)
    assert done.returncode == 1
    assert "build failed" in done.stderr and "the compiler stand-in failed on purpose" in done.stderr
    assert "--cpu" in done.stderr
    assert not list((tmp_path / "cache").rglob("*.whl"))
    kept = re.search(r"the full log is kept in (\S+)\.", done.stderr).group(1)
    assert Path(kept).is_file() and Path(kept).is_relative_to(tmp_path)  # for the user to read


def test_the_estimate_learns_from_the_last_recorded_build(machine, tmp_path):
    _, env = machine

    def estimate_with(seconds: int | None) -> int:
        cache = tmp_path / f"cache-{seconds}"
        if seconds is not None:
            recorded = cache / "oi_local" / "wheels" / "0.3.36-cpu-000000000000"
            recorded.mkdir(parents=True)
            (recorded / "build.json").write_text(json.dumps({"backend": "cpu", "build_seconds": seconds, "jobs": 2,
                                                             "load_before": 0.0}))
        out = install({**env, "XDG_CACHE_HOME": str(cache)}, "--dry-run").stdout
        number, unit = re.search(r"take about (\d+) (seconds|minutes)", out).groups()
        return int(number) * (60 if unit == "minutes" else 1)

    fast, slow, default = estimate_with(60), estimate_with(3600), estimate_with(None)
    assert fast < default < slow  # the default is 6 minutes on 2 jobs
