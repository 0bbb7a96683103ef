"""Start-up work done at once, as soon as the model is known, instead of one piece after another.

`begin()` starts the Python kernel (a Computer's warm-up), and imports the LLM client (litellm, 2-3 s of
CPU; not needed for a model served on this machine as OpenAI-compatible, which llm.openai_stream asks over
HTTP) and any modules the caller names (the terminal's) in a background thread, while the caller gets the
model served. `Warmup.attach(interpreter)` hands the warm computer to the interpreter and has a local
OpenAI-compatible server read the system message and example turns right away (`prefill`): llama.cpp-family
servers keep the evaluated prompt, so the first request only reads the user's task.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Sequence
from typing import Any

from oi_local.env import TIMEOUTS


def _import_all(modules: Sequence[str], llm_client: bool) -> None:
    """litellm the way the default completions function imports it (offline, no telemetry) when `llm_client`,
    then `modules`."""
    from oi_local.agent.llm import import_litellm

    loads = [import_litellm] if llm_client else []
    for load in (*loads, *(functools.partial(importlib.import_module, name) for name in modules)):
        try:
            load()
        except Exception:  # the real use reports a missing or broken module; a warm-up never fails
            pass


class Warmup:
    def __init__(self, computer: Any, thread: threading.Thread) -> None:
        self.computer = computer
        self.imports = thread
        self.prefill_thread: threading.Thread | None = None

    def attach(self, interpreter: Any) -> None:
        """Give `interpreter` the warm computer (unless it has its own) and prefill its server's cache."""
        if interpreter._computer is None:
            interpreter.computer = self.computer
        self.prefill_thread = prefill(interpreter)


def begin(languages: Sequence[str] = ("python",), modules: Sequence[str] = (), *, llm_client: bool = True) -> Warmup:
    """Start the languages' runtimes and the imports now, in the background; `llm_client` False when the model
    is served on this machine as OpenAI-compatible (llm.openai_stream needs no litellm)."""
    from oi_local.computer import Computer

    computer = Computer()
    computer.warm_up(*languages)
    thread = threading.Thread(target=_import_all, args=(tuple(modules), llm_client), name="oi-local-warm-imports", daemon=True)
    thread.start()
    return Warmup(computer, thread)


def prefill_messages(interpreter: Any) -> list[dict]:
    """What every first request starts with: the system message and the fixed example turns (those chosen
    per task come after them)."""
    messages = interpreter.llm_messages()
    head = (1 if messages and messages[0]["role"] == "system" else 0) + len(interpreter.example_messages)
    return messages[:head] if head else []


def prefill(interpreter: Any) -> threading.Thread | None:
    """A one-token request with the fixed start of the prompt to a local OpenAI-compatible server, in the
    background; None when there is nothing to send or the server is not of that kind."""
    from oi_local.agent.llm import litellm_completions
    from oi_local.endpoint import speaks_openai_here

    llm = interpreter.llm
    model = str(llm.model or "")
    if not speaks_openai_here(model, llm.api_base) or llm.completions is not litellm_completions:
        return None
    messages = prefill_messages(interpreter)
    if not messages:
        return None
    body = {"model": model.removeprefix("openai/"), "messages": messages, "max_tokens": 1,
            "stream": False}
    if llm.stop:
        body["stop"] = list(llm.stop)
    headers = {"Authorization": f"Bearer {llm.api_key}"} if llm.api_key else {}
    url = llm.api_base.rstrip("/") + "/chat/completions"

    def send() -> None:
        import httpx

        try:
            httpx.post(url, json=body, headers=headers, timeout=TIMEOUTS.llm_silence)
        except httpx.HTTPError:
            pass  # the first real request says what is wrong

    thread = threading.Thread(target=send, name="oi-local-prefill", daemon=True)
    thread.start()
    return thread
