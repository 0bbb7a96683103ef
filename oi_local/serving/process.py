"""Child processes this program starts, and their lifetime: one place for all of it.

- `spawn`: a child in its own session (a Ctrl-C in the terminal reaches us, not it), told by the kernel to
  die with us (Linux: the parent-death signal, set in the child before exec).
- `stop_process_tree`: SIGTERM to a process, its group and its descendants; SIGKILL after a grace period.
- `stop_at_exit` / `forget_at_exit`: callbacks run at normal exit (atexit) and on SIGTERM/SIGHUP (chained to
  the handlers that were there before). Ctrl-C needs nothing: KeyboardInterrupt unwinds into atexit.
- `ManagedChild`: a program such as `ollama serve`, started with the above and stopped at exit.

The parent-death signal is sent when the *thread* that forked the child ends, not the process. So a child is
always forked from a thread that lives as long as the process: the main thread, or one spawner thread
started for this. Where there is no parent-death signal (macOS, BSD), a `ManagedChild` runs under the
watchdog (oi_local.serving.watchdog), which stops it when this process is gone.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from oi_local.env import TIMEOUTS
from oi_local.serving import pdeathsig

HAS_PARENT_DEATH_SIGNAL = pdeathsig.AVAILABLE
parent_death_preexec = pdeathsig.parent_death_preexec


# ---------------------------------------------------------------------------------------------- starting

class _Spawner:
    """Runs spawns on the main thread or on one daemon thread that lives as long as the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def run(self, job: Callable[[], Any]) -> Any:
        if threading.current_thread() is threading.main_thread():
            return job()
        self._ensure_thread()
        done = threading.Event()
        box: dict[str, Any] = {}
        self._jobs.put((job, box, done))
        done.wait()
        if "error" in box:
            raise box["error"]
        return box["value"]

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._pid != os.getpid():  # a forked child: its parent's thread does not exist here
                self._jobs, self._thread, self._pid = queue.SimpleQueue(), None, os.getpid()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="oi-local-spawner", daemon=True)
                self._thread.start()

    def _serve(self) -> None:
        while True:
            job, box, done = self._jobs.get()
            try:
                box["value"] = job()
            except BaseException as error:  # handed to the caller's thread
                box["error"] = error
            finally:
                done.set()


_spawner = _Spawner()


def spawn(argv: Sequence[str], *, stdout: IO[bytes] | int | None, env: Mapping[str, str] | None = None,
          stdin: IO[bytes] | int | None = subprocess.DEVNULL, parent_death_signal: int | None = signal.SIGKILL,
          cwd: str | Path | None = None) -> subprocess.Popen:
    """Start `argv` in its own session (stderr joins stdout). With `parent_death_signal`, the kernel sends it
    that signal when this process ends, however it ends (Linux; elsewhere nothing: see the watchdog)."""
    kwargs: dict[str, Any] = {}
    if os.name == "posix":
        kwargs["start_new_session"] = True
        if parent_death_signal is not None:
            kwargs["preexec_fn"] = parent_death_preexec(parent_death_signal)
    else:  # pragma: no cover - Windows
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP

    def start() -> subprocess.Popen:
        return subprocess.Popen(list(argv), stdin=stdin, stdout=stdout, stderr=subprocess.STDOUT,
                                env=dict(env) if env is not None else None, cwd=cwd, **kwargs)

    if kwargs.get("preexec_fn") is None:
        return start()
    return _spawner.run(start)


# ---------------------------------------------------------------------------------------------- stopping

def stop_process_tree(pid: int, grace: float = TIMEOUTS.stop_grace, popen: subprocess.Popen | None = None) -> None:
    """SIGTERM to the process, its process group and every descendant; SIGKILL to whatever is left after grace."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        procs = []
    group = None
    if os.name == "posix":
        with contextlib.suppress(OSError):
            group = os.getpgid(pid) if procs else None
        if group is not None and group != os.getpgrp():
            with contextlib.suppress(OSError):
                os.killpg(group, signal.SIGTERM)
        else:
            group = None
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    deadline = time.monotonic() + grace
    if popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(max(0.0, deadline - time.monotonic()))
    _gone, alive = psutil.wait_procs([p for p in procs if popen is None or p.pid != popen.pid],
                                     timeout=max(0.0, deadline - time.monotonic()))
    if popen is not None and popen.poll() is None:
        with contextlib.suppress(psutil.Error):
            alive.append(psutil.Process(popen.pid))
    if group is not None:
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGKILL)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    if popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(grace)
    psutil.wait_procs(alive, timeout=grace)


def wait_until(check: Callable[[], object], *, timeout: float, interval: float = 0.1) -> bool:
    """Poll `check()` until it is true or `timeout` seconds passed; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return bool(check())


# ---------------------------------------------------------------------------------------------- exit hooks

_hooks: dict[Hashable, Callable[[], None]] = {}
_hooks_lock = threading.Lock()
_hooks_pid: int | None = None
_previous_handlers: dict[int, object] = {}


def stop_at_exit(key: Hashable, callback: Callable[[], None]) -> None:
    """Run `callback` when this process exits normally, on Ctrl-C, or on SIGTERM/SIGHUP (newest first)."""
    _install_exit_hooks()
    with _hooks_lock:
        _hooks[key] = callback


def forget_at_exit(key: Hashable) -> None:
    with _hooks_lock:
        _hooks.pop(key, None)


def run_exit_hooks() -> None:
    """Run every registered callback once. Safe to call more than once; a forked child runs none of its
    parent's."""
    if _hooks_pid != os.getpid():
        return
    with _hooks_lock:
        callbacks = list(reversed(_hooks.values()))
        _hooks.clear()
    for callback in callbacks:
        with contextlib.suppress(Exception):
            callback()


def _on_signal(signum: int, frame: object) -> None:
    run_exit_hooks()
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    else:  # the default action (terminate): restore it and deliver the signal again, so the exit status is right
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _install_exit_hooks() -> None:
    """atexit always; SIGTERM/SIGHUP handlers only from the main thread, chained to the previous handlers."""
    global _hooks_pid
    if _hooks_pid == os.getpid():
        return
    if _hooks_pid is not None:  # a forked child: the callbacks in the table are its parent's
        with _hooks_lock:
            _hooks.clear()
    _hooks_pid = os.getpid()
    _previous_handlers.clear()
    atexit.register(run_exit_hooks)
    if threading.current_thread() is not threading.main_thread():
        return
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        try:
            previous = signal.getsignal(signum)
            if previous is _on_signal:
                continue
            signal.signal(signum, _on_signal)
            _previous_handlers[signum] = previous
        except (ValueError, OSError):  # not allowed here (embedded interpreter): atexit still covers normal exit
            continue


# ---------------------------------------------------------------------------------------------- ManagedChild

class ManagedChild:
    """A program this process started (e.g. `ollama serve`): its own session, dies with us, stopped at exit.

    Offers the part of ManagedServer's interface the explorer uses: .endpoint, .healthy(), .stop(). It gets
    SIGTERM (not SIGKILL) when we die, so that it can stop its own children. `watchdog=None` picks the
    watchdog only where the kernel has no parent-death signal; True forces it (tests use that on Linux).
    """

    def __init__(self, argv: Sequence[str], *, log_path: Path, env: Mapping[str, str] | None = None,
                 watchdog: bool | None = None) -> None:
        from oi_local.serving import logs

        self.log_path = log_path
        self.argv = list(argv)
        self.endpoint = None
        use_watchdog = (not HAS_PARENT_DEATH_SIGNAL) if watchdog is None else watchdog
        with logs.open_private(log_path) as log:
            if use_watchdog and os.name == "posix":
                from oi_local.serving import watchdog as watchdog_module

                self.process, self.pid = watchdog_module.start(
                    argv, log_path=log_path, env=dict(env) if env is not None else None, child_signal=signal.SIGTERM)
            else:
                self.process = spawn(argv, stdout=log, env=env, parent_death_signal=signal.SIGTERM)
                self.pid = self.process.pid
        stop_at_exit(self, self.stop)

    def healthy(self) -> bool:
        return self.process.poll() is None

    def recovery_hook(self, notify: Callable[[str], None] | None = None) -> Callable[[BaseException], None]:
        """For `llm.on_endpoint_failure`: when the child has ended, say so (status, log and its last lines).
        It is not started again: it returns None, and the request fails with its own error."""
        def hook(error: BaseException) -> None:
            code = self.process.poll()
            if code is not None and notify is not None:
                notify(f"{Path(self.argv[0]).name} (pid {self.pid}), started by this program, ended with status "
                       f"{code}. Its log: {self.log_path}. Last lines:\n{self.log_tail()}")
        return hook

    def log_tail(self, lines: int = 10) -> str:
        from oi_local.serving.logs import tail

        return "\n".join(tail(self.log_path, lines))

    def stop(self) -> None:
        forget_at_exit(self)
        if self.process.poll() is None:
            stop_process_tree(self.process.pid, TIMEOUTS.stop_grace, self.process)
        if self.pid != self.process.pid:
            stop_process_tree(self.pid, TIMEOUTS.stop_grace)

    def __enter__(self) -> ManagedChild:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
