"""What every language shares: the LMC chunks it yields and a clear note when its runtime is missing.

A language is any class with `name`, `run(code)` (a generator of LMC chunks), `stop()` and `terminate()`
(the seed's custom-languages page). `aliases` is optional; the built-in languages also take the Computer
in their constructor so they can read its settings (`timeout`) at run time.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator, Sequence
from typing import Any

ACTIVE_LINE_MIME = "application/vnd.oi-local.active-line+json"
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


def output(text: str) -> dict:
    return {"type": "console", "format": "output", "content": text}


def active_line(line: int | None) -> dict:
    return {"type": "console", "format": "active_line", "content": line}


def image(base64_data: str, fmt: str = "base64.png") -> dict:
    return {"type": "image", "format": fmt, "content": base64_data}


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def find_runtime(executables: Sequence[str]) -> str | None:
    """The first of `executables` found on PATH, as a full path."""
    for name in executables:
        found = shutil.which(name)
        if found:
            return found
    return None


def missing_runtime(language: str, executables: Sequence[str], hint: str = "") -> str:
    names = " or ".join(f"`{name}`" for name in executables)
    text = f"{language} code cannot run here: its runtime ({names}) is not installed or not on PATH."
    if hint:
        text += f" {hint}"
    return text + " Use a language that is available (python or shell) instead.\n"


def run_timeout(computer: Any, default: float | None = 300.0) -> float | None:
    """The per-run time limit in seconds from the computer's settings (None or 0: no limit)."""
    value = getattr(computer, "timeout", default) if computer is not None else default
    return float(value) if value else None


def timeout_message(seconds: float) -> str:
    return (
        f"\n[Stopped: the run took longer than {seconds:g} seconds (computer.timeout). Make the code faster, "
        "run it in the background, or raise computer.timeout.]\n"
    )


class ActiveLineThrottle:
    """Forward a changing active line, but at most every `interval` seconds while it goes backwards (loops)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.last: int | None = None
        self.highest = 0
        self.at = 0.0

    def accept(self, line: int, now: float) -> bool:
        if line == self.last:
            return False
        if line <= self.highest and now - self.at < self.interval:
            return False
        self.last, self.at = line, now
        self.highest = max(self.highest, line)
        return True


def run_once_chunks(chunks: Iterator[dict]) -> list[dict]:
    """Merge a run's streamed chunks into messages the way OI's non-streaming run does (no active lines)."""
    merged: list[dict] = []
    for chunk in chunks:
        if chunk.get("format") == "active_line":
            continue
        last = merged[-1] if merged else None
        if (
            last is not None
            and chunk.get("type") == "console"
            and last.get("type") == "console"
            and last.get("format") == chunk.get("format")
            and isinstance(last.get("content"), str)
            and isinstance(chunk.get("content"), str)
        ):
            last["content"] += chunk["content"]
        else:
            merged.append(dict(chunk))
    return merged
