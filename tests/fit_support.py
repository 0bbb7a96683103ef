"""Measuring what a real llama.cpp server holds, for tests/test_fit.py and bench/bench_fit.py.

The server is started the way the memory estimate assumes (llama-cpp-python's server with logits_all off;
everything else at its defaults), then fed one prompt that fills most of its context window: only then
has llama.cpp touched the attention scratch it reserved, so resident memory is at its worst. The figure
is the process's peak resident set (VmHWM), which includes the memory-mapped weights it touched.
"""

from __future__ import annotations

import contextlib
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


@dataclass(frozen=True)
class Measured:
    n_ctx: int
    rss_after_load: int
    rss_after_small: int  # after a one-line chat completion
    peak_after_fill: int  # VmHWM after a prompt filling ~90 % of the window
    prompt_tokens: int
    fill_seconds: float


def _peak_rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return psutil.Process(pid).memory_info().rss


@contextlib.contextmanager
def running_server(model_path: Path, n_ctx: int, *, extra: tuple[str, ...] = (), log_path: Path | None = None,
                   timeout: float = 120.0) -> Iterator[tuple[subprocess.Popen, str]]:
    """llama.cpp's server started as the runner starts it (n_ctx, logits_all off), until it answers /v1/models;
    yields (process, base URL); stopped (its whole process tree) afterwards. Its log goes to `log_path`."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--host", "127.0.0.1",
        "--port", str(port), "--n_ctx", str(n_ctx), "--logits_all", "False", *extra,
    ]
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited with {process.returncode}: {' '.join(cmd)}")
            try:
                if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama.cpp server did not become healthy in {timeout:.0f} s")
            time.sleep(0.1)
        yield process, base
    finally:
        stop_process_tree(process.pid, grace=10, popen=process)
        if log_path:
            log.close()


def server_log(model_path: Path, n_ctx: int, log_path: Path, *, extra: tuple[str, ...] = ()) -> str:
    """The log of llama.cpp's server after it loaded the model and made its context (its buffer sizes)."""
    with running_server(model_path, n_ctx, extra=extra, log_path=log_path):
        pass
    return log_path.read_text(errors="replace")


def measure_server(model_path: Path, n_ctx: int, *, fill: float = 0.9, timeout: float = 600.0) -> Measured:
    with running_server(model_path, n_ctx) as (process, base):
        proc = psutil.Process(process.pid)
        after_load = proc.memory_info().rss
        small = httpx.post(f"{base}/chat/completions", timeout=timeout,
                           json={"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4})
        small.raise_for_status()
        after_small = proc.memory_info().rss
        started = time.monotonic()
        # " word" is one token for this tokenizer, so the prompt is about `words` tokens long
        words = int(n_ctx * fill)
        reply = httpx.post(f"{base}/completions", timeout=timeout,
                           json={"prompt": "word " * words, "max_tokens": 2, "temperature": 0})
        reply.raise_for_status()
        seconds = time.monotonic() - started
        return Measured(
            n_ctx=n_ctx,
            rss_after_load=after_load,
            rss_after_small=after_small,
            peak_after_fill=_peak_rss(process.pid),
            prompt_tokens=int(reply.json()["usage"]["prompt_tokens"]),
            fill_seconds=seconds,
        )
