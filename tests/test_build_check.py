"""A llama.cpp build that cannot use the GPU that is there is said plainly: llama_cpp's own answer (asked in a
child process, cached per build), then `oi-local hardware`, the explorer's first screen and `oi-local serve`
with a stand-in nvidia-smi printing the real H200's outputs (this machine's build is the CPU one)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

import standins
from oi_local.machine import llama_build, summary
from oi_local.machine.hardware import CPU, GPU, Hardware

NOTE = "GPU: NVIDIA H200 · llama.cpp build: CPU only — rebuild with `scripts/install.sh --gpu`"
ROOT = Path(__file__).resolve().parent.parent


def _gpu_libraries(lib: Path) -> bool:
    return any(any(lib.glob(f"libggml-{kind}*")) for kind in ("cuda", "hip", "metal", "vulkan", "sycl"))


def test_the_installed_build_answers_for_itself_and_the_answer_is_cached(tmp_path):
    lib = llama_build.library_folder()
    assert lib is not None and lib.is_dir()
    build = llama_build.check(tmp_path)
    assert build.installed and build.version
    assert build.gpu_offload is _gpu_libraries(lib)  # CPU build here: False
    cached = list((tmp_path / "llama_build").glob("*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["gpu_offload"] is build.gpu_offload
    again = llama_build.check(tmp_path, python="/nonexistent/python")  # no child process: the cache answers
    assert again.gpu_offload is build.gpu_offload and again.problem is None


def test_a_rebuild_changes_the_key(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "libggml-cpu.so").write_bytes(b"x" * 10)
    before = llama_build.build_key(lib)
    (lib / "libggml-cuda.so").write_bytes(b"y" * 10)
    assert llama_build.build_key(lib) != before


def test_a_build_that_cannot_be_loaded_is_a_problem_not_a_crash(tmp_path):
    python = standins.stand_in(tmp_path, "python", 'echo "OSError: libcuda.so.1: cannot open shared object file" >&2\nexit 1\n')
    build = llama_build.ask(str(python))
    assert build.gpu_offload is None and "libcuda.so.1" in build.problem
    assert llama_build.check(tmp_path / "state", lib=tmp_path / "missing").installed is False


def _h200(llama_cpp_gpu: bool | None) -> Hardware:
    gpu = GPU("nvidia", "NVIDIA H200", "cuda", 150754820096, 150109945856, driver="580.159.04", runtime_version="13.0")
    return Hardware(135148564480, 134602551296, 68674236416, None, CPU("Intel(R) Xeon(R) Processor", 16, 16),
                    (gpu,), "Linux", (), llama_cpp_gpu=llama_cpp_gpu)


def test_the_hardware_line_says_a_cpu_only_build_plainly():
    line = summary.hardware_line(_h200(False))
    first, second = line.splitlines()
    assert first.startswith("RAM 135.1 GB (134.6 GB free) · GPU NVIDIA H200 150.8 GB [cuda] · disk 68.7 GB free")
    assert second == NOTE
    assert "\n" not in summary.hardware_line(_h200(True)) and summary.gpu_build_note(_h200(True)) is None
    assert summary.gpu_build_note(replace(_h200(False), gpus=())) is None  # no GPU: nothing to say
    assert summary.gpu_build_note(None) is None


def _env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    standins.nvidia_smi(bin_dir)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "OI_LOCAL_HOME": str(tmp_path / "home"), "COLUMNS": "160"}


def test_hardware_command_says_the_gpu_goes_unused(tmp_path):
    env = _env(tmp_path)
    done = subprocess.run([sys.executable, "-m", "oi_local", "hardware"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert NOTE in done.stdout
    assert "NVIDIA H200 [nvidia, cuda 13.0, driver 580.159.04]: 150.8 GB total, 150.1 GB free" in done.stdout
    assert "GiB" not in done.stdout  # one unit convention: decimal GB
    data = json.loads(subprocess.run([sys.executable, "-m", "oi_local", "hardware", "--json"], capture_output=True,
                                     text=True, env=env, timeout=120).stdout)
    assert data["llama_cpp_gpu"] is False and data["gpus"][0]["name"] == "NVIDIA H200"


@pytest.mark.server
@pytest.mark.timeout(240)
def test_serve_says_the_gpu_goes_unused_and_puts_no_layer_on_it(tmp_path, test_model_path):
    from oi_local.serving.ports import free_port

    env = _env(tmp_path)
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "oi_local", "serve", str(test_model_path), "--port",
                                    str(free_port()), "--fresh_server"], stdout=stdout, stderr=stderr, env=env,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + 200
        while "Server ready" not in out.read_text() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "Server ready" in out.read_text(), out.read_text() + err.read_text()
        assert NOTE in err.read_text()
        assert "GPU layers 0)" in out.read_text()
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.mark.tmux
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_explorers_first_screen_says_it_and_the_model_menu_shows_speeds(tmp_path):
    from tmux_driver import Tmux

    from oi_local.serving.ports import free_port

    env = _env(tmp_path)
    env.update({"OLLAMA_HOST": f"127.0.0.1:{free_port()}", "LMSTUDIO_API_BASE": f"http://127.0.0.1:{free_port()}/v1",
                "JAN_API_BASE": f"http://127.0.0.1:{free_port()}/v1"})
    keep = ("PATH", "OI_LOCAL_HOME", "OLLAMA_HOST", "LMSTUDIO_API_BASE", "JAN_API_BASE", "HOME", "LANG", "TERM")
    t = Tmux(f"{ROOT / '.venv' / 'bin' / 'interpreter'} --local", env={k: env[k] for k in keep if k in env},
             name="oi-gpu-note")
    try:
        screen = t.wait_for("Choose a provider", timeout=60)
        assert NOTE in screen.replace("\n", "") or NOTE in screen
        t.wait_for("Custom OpenAI-compatible URL")
        t.send("Enter")  # llama.cpp, the first provider
        screen = t.wait_for("choose a model", timeout=60)
        assert "tok/s" in screen
    finally:
        t.close()
