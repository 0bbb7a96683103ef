"""Measuring real llama.cpp servers for the benchmarks and bench/gpu_check.py (bench/ imports nothing from tests/).

A server is started as oi_local's runner starts it (`python -m llama_cpp.server`, logits_all off), its log kept
in a file; what is measured: the buffer sizes in its log, resident memory, decode speed over HTTP.
"""

from __future__ import annotations

import time

import httpx

from standins.raw_llama import TEST_MODEL_FILE, Server, find_test_model, peak_rss, server

__all__ = ["TEST_MODEL_FILE", "Server", "find_test_model", "peak_rss", "server"]

SPECIAL_TOKENS = {str(i): -100 for i in range(5)}  # never end early: the first ids are the specials in both vocabularies


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
