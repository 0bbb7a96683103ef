"""Languages run as one script per run by their own interpreter: R, AppleScript, PowerShell.

They are not stateful (each run is a fresh process), and when the interpreter is not installed the run
says so instead of failing. stdin is /dev/null, so nothing waits for input.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

from oi_local.computer.languages.base import (
    active_line,
    find_runtime,
    missing_runtime,
    output,
    run_timeout,
    timeout_message,
)
from oi_local.computer.languages.piped_process import interruptible


class ScriptedLanguage:
    name = ""
    display_name = ""
    aliases: tuple[str, ...] = ()
    executables: tuple[str, ...] = ()
    arguments: tuple[str, ...] = ()
    suffix = ".txt"
    hint = ""

    def __init__(self, computer: Any = None) -> None:
        self.computer = computer
        self._process: subprocess.Popen | None = None
        self._stop_requested = threading.Event()

    def run(self, code: str) -> Iterator[dict]:
        program = find_runtime(self.executables)
        if program is None:
            yield output(missing_runtime(self.display_name or self.name, self.executables, self.hint))
            return
        with tempfile.NamedTemporaryFile("w", suffix=self.suffix, prefix="oi-local-", delete=False) as handle:
            handle.write(code)
        self._stop_requested.clear()
        limit = run_timeout(self.computer)
        started = time.monotonic()
        try:
            self._process = process = subprocess.Popen(
                [program, *self.arguments, handle.name],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=interruptible(),
            )
            reader = threading.Thread(target=self._pump, args=(process,), daemon=True)
            chunks: list[bytes] = []
            self._chunks, self._chunk_ready = chunks, threading.Event()
            reader.start()
            while reader.is_alive() or chunks:
                self._chunk_ready.wait(0.25)
                self._chunk_ready.clear()
                while chunks:
                    yield output(chunks.pop(0).decode(errors="replace"))
                if limit is not None and time.monotonic() - started > limit and process.poll() is None:
                    yield output(timeout_message(limit))
                    self._stop_requested.set()
                if self._stop_requested.is_set() and process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            if process.returncode:
                yield output(f"\n[exit code {process.returncode}]\n")
            yield active_line(None)
        finally:
            if self._process is not None and self._process.poll() is None:
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process = None
            os.unlink(handle.name)

    def _pump(self, process: subprocess.Popen) -> None:
        for data in iter(lambda: process.stdout.read1(65536), b""):
            self._chunks.append(data)
            self._chunk_ready.set()
        self._chunk_ready.set()

    def stop(self) -> None:
        self._stop_requested.set()

    def terminate(self) -> None:
        self.stop()


class R(ScriptedLanguage):
    name = "r"
    display_name = "R"
    aliases = ("rscript",)
    executables = ("Rscript",)
    suffix = ".R"
    hint = "Install R to run it."


class AppleScript(ScriptedLanguage):
    name = "applescript"
    display_name = "AppleScript"
    aliases = ("osascript",)
    executables = ("osascript",)
    suffix = ".applescript"
    hint = "AppleScript runs only on macOS."


class PowerShell(ScriptedLanguage):
    name = "powershell"
    display_name = "PowerShell"
    aliases = ("pwsh", "ps1")
    executables = ("pwsh", "powershell")
    arguments = ("-NoProfile", "-NonInteractive", "-File")
    suffix = ".ps1"
    hint = "Install PowerShell (pwsh) to run it."
