"""Measuring what a real llama.cpp server holds, for tests/test_fit.py and tests/test_memory.py.

The server is started the way the memory estimate assumes (llama-cpp-python's server with logits_all off;
everything else at its defaults), then fed one prompt that fills most of its context window: only then
has llama.cpp touched the attention scratch it reserved, so resident memory is at its worst. The figure
is the process's peak resident set (VmHWM), which includes the memory-mapped weights it touched.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from raw_llama import peak_rss, server


@dataclass(frozen=True)
class Measured:
    n_ctx: int
    rss_after_load: int
    rss_after_small: int  # after a one-line chat completion
    peak_after_fill: int  # VmHWM after a prompt filling ~90 % of the window
    prompt_tokens: int
    fill_seconds: float


def server_log(model_path: Path, n_ctx: int, log_path: Path, *, extra: tuple[str, ...] = ()) -> str:
    """The log of llama.cpp's server after it loaded the model and made its context (its buffer sizes)."""
    with server(model_path, n_ctx, log_path, extra=extra) as started:
        pass
    return started.log()


def measure_server(model_path: Path, n_ctx: int, *, fill: float = 0.9, timeout: float = 600.0,
                   flash_attn: bool = False) -> Measured:
    extra = ("--flash_attn", "True") if flash_attn else ()
    with tempfile.TemporaryDirectory(prefix="oi-fit-") as folder, \
            server(model_path, n_ctx, Path(folder) / "server.log", timeout=timeout, extra=extra) as started:
        process, base = started.process, started.base
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
            peak_after_fill=peak_rss(process.pid),
            prompt_tokens=int(reply.json()["usage"]["prompt_tokens"]),
            fill_seconds=seconds,
        )
