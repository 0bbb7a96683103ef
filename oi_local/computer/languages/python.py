"""Python: a stateful IPython kernel (jupyter_client + ipykernel, imported only when Python first runs).

A new kernel first runs kernel_setup.py: the active-line markers below, and the everyday standard modules
(PRELOAD: math, os, sys, re, json, datetime, time, random, pathlib's Path, collections, itertools,
statistics, subprocess, shutil) put into builtins, so code that forgets to import them still runs.

Active line without touching what the code does: an IPython AST transformer puts a call to a builtin
marker before each statement of the cell (top level and inside its loops, ifs, withs and trys, not
inside the functions and classes it defines), keeping every statement's own line number. So tracebacks
name the user's lines, the last expression is still displayed, and nothing of the user's namespace
changes (the markers live in builtins and survive %reset). Outside loops the marker publishes a
display_data message with a private MIME type at once (in order with the output); inside loops it only
appends the line to a deque (a C call), and a thread in the kernel publishes the latest one every 50 ms,
so tight loops stay fast (bench/bench_computer.py measures the cost).

Output is read from the kernel's iopub channel as it comes (stream, display_data, execute_result,
error), so stdout, stderr and tracebacks arrive in order while the cell runs. Input (`input()`,
`getpass`) is refused by the kernel with a clear StdinNotImplementedError, because nobody can type into
a run. stop() interrupts the kernel (KeyboardInterrupt in the cell, variables kept); if the cell does not
end within 3 s of that, the kernel is restarted and the model told that its variables are gone.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from oi_local.computer.languages.base import (
    ACTIVE_LINE_MIME,
    active_line,
    image,
    output,
    run_timeout,
    strip_ansi,
    timeout_message,
)
from oi_local.env import TIMEOUTS

STOP_GRACE = 3.0
POLL = 0.25

# The everyday standard modules a small model uses without importing them (its most frequent first-run
# failure was `NameError: name 'math' is not defined`): (name, module, attribute or "").
PRELOAD: tuple[tuple[str, str, str], ...] = tuple(
    (name, name, "") for name in (
        "math", "os", "sys", "re", "json", "datetime", "time", "random", "collections", "itertools",
        "statistics", "subprocess", "shutil",
    )
) + (("Path", "pathlib", "Path"),)


def kernel_setup_code(preload: tuple[tuple[str, str, str], ...] = PRELOAD) -> str:
    """What a new kernel runs first (kernel_setup.py, called and deleted again)."""
    source = (Path(__file__).parent / "kernel_setup.py").read_text(encoding="utf-8")
    return f"{source}\n__oi_local_setup({ACTIVE_LINE_MIME!r}, {list(preload)!r})\ndel __oi_local_setup\n"

class KernelStartError(Exception):
    pass


class Python:
    name = "python"
    aliases = ("py", "python3")

    def __init__(self, computer: Any = None) -> None:
        self.computer = computer
        self.preload = PRELOAD  # modules in builtins from the start; () for none (read when a kernel starts)
        self._manager = None
        self._client = None
        self._start_lock = threading.Lock()
        self._stop_requested = threading.Event()
        self._running = False
        self._warm_thread: threading.Thread | None = None
        self._runtime_dir: str | None = None

    # -- the seed's language interface ------------------------------------------------------------------

    def run(self, code: str) -> Iterator[dict]:
        try:
            client = self._ensure_kernel()
        except KernelStartError as error:
            yield output(f"{error}\n")
            return
        yield from self._run(client, code)

    def stop(self) -> None:
        if self._running:
            self._stop_requested.set()
            self._interrupt()

    def terminate(self) -> None:
        self._stop_requested.set()
        with self._start_lock:
            self._shutdown()

    def warm_up(self) -> None:
        """Start the kernel in the background so the first run does not wait for it."""
        if self._manager is not None or (self._warm_thread and self._warm_thread.is_alive()):
            return

        def start() -> None:
            try:
                self._ensure_kernel()
            except KernelStartError:
                pass  # the first run reports it

        self._warm_thread = threading.Thread(target=start, name="oi-local-python-warm-up", daemon=True)
        self._warm_thread.start()

    # -- the kernel -------------------------------------------------------------------------------------

    def _ensure_kernel(self):
        with self._start_lock:
            if self._manager is not None and self._manager.is_alive():
                return self._client
            self._shutdown()
            try:
                from jupyter_client import KernelManager
                from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
            except ImportError as error:
                raise KernelStartError(
                    f"Python code cannot run: jupyter_client is not installed ({error}). "
                    "Install it with `pip install jupyter_client ipykernel`."
                ) from error
            argv = [
                sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                "--HistoryManager.enabled=False", "--InteractiveShell.xmode=Plain",
                "--InteractiveShell.colors=nocolor", "--IPKernelApp.quiet=True",
            ]
            self._runtime_dir = tempfile.mkdtemp(prefix="oi-local-kernel-")
            # IPC sockets in a private folder: no TCP port is opened, and nothing is left in the cwd.
            spec = KernelSpec(argv=argv, display_name="oi-local python", language="python")

            class ThisPython(KernelSpecManager):
                # This interpreter (which has ipykernel), whatever "python3" kernelspec the user has installed.
                def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
                    return spec

            manager = KernelManager(
                kernel_spec_manager=ThisPython(),
                kernel_name="oi-local-python",
                transport="ipc",
                ip=os.path.join(self._runtime_dir, "kernel"),
                connection_file=os.path.join(self._runtime_dir, "connection.json"),
            )
            env = dict(os.environ)
            env.pop("PYTHONSTARTUP", None)
            env["PAGER"] = "cat"
            try:
                # The kernel's own log would land in the user's terminal; the code's output comes over iopub.
                manager.start_kernel(env=env, cwd=os.getcwd(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                client = manager.client()
                client.start_channels()
                client.wait_for_ready(timeout=TIMEOUTS.kernel_ready)
            except BaseException as error:  # Ctrl-C while starting too: leave no kernel behind
                try:
                    manager.shutdown_kernel(now=True)
                except Exception:
                    pass
                shutil.rmtree(self._runtime_dir, ignore_errors=True)
                self._runtime_dir = None
                if not isinstance(error, Exception):
                    raise
                raise KernelStartError(
                    f"Python code cannot run: the IPython kernel did not start ({type(error).__name__}: {error}). "
                    f"Check that ipykernel is installed for {sys.executable} (`{sys.executable} -m pip install ipykernel`)."
                ) from error
            self._manager, self._client = manager, client
            self._execute_silently(kernel_setup_code(self.preload))
            return client

    def _execute_silently(self, code: str) -> None:
        msg_id = self._client.execute(code, silent=True, store_history=False)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                reply = self._client.get_shell_msg(timeout=1)
            except queue.Empty:
                continue
            if reply["parent_header"].get("msg_id") == msg_id:
                return

    def _interrupt(self) -> None:
        manager = self._manager
        if manager is not None:
            try:
                manager.interrupt_kernel()
            except Exception:
                pass

    def _shutdown(self) -> None:
        client, manager = self._client, self._manager
        self._client = self._manager = None
        if client is not None:
            try:
                client.stop_channels()
            except Exception:
                pass
        if manager is not None:
            try:
                manager.shutdown_kernel(now=True)
            except Exception:
                pass
        if self._runtime_dir is not None:
            shutil.rmtree(self._runtime_dir, ignore_errors=True)
            self._runtime_dir = None

    # -- one run ----------------------------------------------------------------------------------------

    def _run(self, client, code: str) -> Iterator[dict]:
        self._stop_requested.clear()
        self._running = True
        limit = run_timeout(self.computer)
        started = time.monotonic()
        stopping_since: float | None = None
        finished = False
        # stop_on_error=False: an error or interrupt in this cell must not abort the next run's request.
        msg_id = client.execute(code, allow_stdin=False, store_history=True, stop_on_error=False)
        try:
            while True:
                try:
                    message = client.get_iopub_msg(timeout=POLL)
                except queue.Empty:
                    message = None
                now = time.monotonic()
                if message is not None and message["parent_header"].get("msg_id") == msg_id:
                    kind, content = message["msg_type"], message["content"]
                    if kind == "status" and content.get("execution_state") == "idle":
                        break
                    yield from _chunks(kind, content)
                    continue
                if self._manager is None or not self._manager.is_alive():
                    yield output(
                        "\n[The Python kernel died (the code may have exited it, crashed it, or used too much "
                        "memory). The next run starts a new kernel: variables and imports from earlier runs are gone.]\n"
                    )
                    with self._start_lock:
                        self._shutdown()
                    break
                if stopping_since is None:
                    if limit is not None and now - started > limit:
                        yield output(timeout_message(limit))
                        self._stop_requested.set()
                        self._interrupt()
                    if self._stop_requested.is_set():
                        stopping_since = now
                elif now - stopping_since > STOP_GRACE:
                    with self._start_lock:
                        self._shutdown()
                    yield output(
                        "\n[Python did not stop when interrupted, so its kernel was restarted: variables and "
                        "imports from earlier runs are gone.]\n"
                    )
                    break
            finished = True
            yield active_line(None)
        finally:
            self._running = False
            if not finished and self._manager is not None:
                # The consumer stopped reading mid-run (Ctrl-C in the terminal): stop the code too, and
                # wait for the kernel to be idle so the next run starts clean.
                self._interrupt()
                self._settle(client, msg_id)

    def _settle(self, client, msg_id: str) -> None:
        deadline = time.monotonic() + STOP_GRACE
        while time.monotonic() < deadline:
            try:
                message = client.get_iopub_msg(timeout=POLL)
            except queue.Empty:
                continue
            if (
                message["parent_header"].get("msg_id") == msg_id
                and message["msg_type"] == "status"
                and message["content"].get("execution_state") == "idle"
            ):
                return
        with self._start_lock:
            self._shutdown()


def _chunks(kind: str, content: dict) -> Iterator[dict]:
    if kind == "stream":
        text = content.get("text", "")
        if text:
            yield output(text)
    elif kind in ("display_data", "execute_result", "update_display_data"):
        data = content.get("data", {})
        if ACTIVE_LINE_MIME in data:
            line = data[ACTIVE_LINE_MIME]
            yield active_line(line.get("line") if isinstance(line, dict) else None)
        elif "image/png" in data:
            yield image(data["image/png"], "base64.png")
        elif "image/jpeg" in data:
            yield image(data["image/jpeg"], "base64.jpeg")
        else:
            for mime in ("text/plain", "text/markdown", "text/html", "application/json"):
                if mime in data:
                    text = data[mime] if isinstance(data[mime], str) else repr(data[mime])
                    yield output(text + "\n")
                    break
    elif kind == "error":
        traceback = "\n".join(content.get("traceback", [])) or f"{content.get('ename')}: {content.get('evalue')}"
        text = _BLANK_LINES.sub("\n", strip_ansi(traceback)).strip("\n") + "\n"
        if content.get("ename") == "StdinNotImplementedError":
            text += (
                "[input() cannot work here: nobody can type into a run. Put the value in the code instead, "
                "or read it from a file.]\n"
            )
        yield output(text)


_BLANK_LINES = re.compile(r"\n\s*\n")
