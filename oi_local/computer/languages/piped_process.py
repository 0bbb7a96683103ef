"""A persistent interpreter driven over pipes, as the shell and JavaScript languages run theirs.

The process runs in its own session with stdin from /dev/null and stdout and stderr on one pipe (so their
order is kept). It reads one line per run from a private command pipe and reports on a private control
pipe; the two fd numbers it was given are also in its environment as `OI_LOCAL_FDS` ("<command> <control>").
Our ends of stdout and the control pipe are non-blocking, to be read with select() and read_available().

Both stop a run the same way, with a StopLadder: interrupt, then harder steps at set times after the stop,
and at the end the process is replaced (its state is lost, and the model is told).
"""

from __future__ import annotations

import codecs
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from oi_local.computer.languages.base import output


def _restore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def interruptible() -> Callable[[], None] | None:
    """A preexec_fn for children that stop() interrupts. A program started in the background by a shell
    inherits SIGINT and SIGQUIT ignored, and so would every child it starts: then no stop could reach them."""
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN or signal.getsignal(signal.SIGQUIT) is signal.SIG_IGN
    return _restore_interrupts if ignored else None


def start_piped(
    arguments: Callable[[int, int], list[str]], env: dict[str, str], cwd: str | None = None
) -> tuple[subprocess.Popen, int, int]:
    """Start the process from `arguments(command_fd, control_fd)` (its ends of the two pipes) and return it
    with our ends: the command pipe to write and the control pipe to read."""
    command_read, command_write = os.pipe()
    control_read, control_write = os.pipe()
    env = dict(env, OI_LOCAL_FDS=f"{command_read} {control_write}")
    try:
        process = subprocess.Popen(
            arguments(command_read, control_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(command_read, control_write),
            start_new_session=True,
            preexec_fn=interruptible(),
            cwd=cwd,
            env=env,
        )
    finally:
        os.close(command_read)
        os.close(control_write)
    os.set_blocking(process.stdout.fileno(), False)
    os.set_blocking(control_read, False)
    return process, command_write, control_read


def kill_piped(process: subprocess.Popen | None, fds: Iterable[int | None]) -> None:
    """Kill the process with everything in its session, reap it and close our pipe ends."""
    if process is not None:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        process.wait()
        if process.stdout:
            process.stdout.close()
    for fd in fds:
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


class PipedLanguage:
    """Base of a language that keeps one piped process across runs: its handles, the stop flag, killing it.

    A subclass starts the process with _start_process(), sets `_running` for the length of a run and
    watches `_stop_requested` in it."""

    def __init__(self, computer: Any = None) -> None:
        self.computer = computer
        self._process: subprocess.Popen | None = None
        self._command_fd: int | None = None
        self._control_fd: int | None = None
        self._stop_requested = threading.Event()
        self._running = False
        self._lock = threading.Lock()

    def stop(self) -> None:
        if self._running:
            self._stop_requested.set()

    def terminate(self) -> None:
        self._stop_requested.set()
        self._kill()

    def _start_process(
        self, arguments: Callable[[int, int], list[str]], env: dict[str, str], cwd: str | None = None
    ) -> None:
        self._process, self._command_fd, self._control_fd = start_piped(arguments, env, cwd)

    def _kill(self) -> None:
        process, self._process = self._process, None
        kill_piped(process, (self._command_fd, self._control_fd))
        self._command_fd = self._control_fd = None


@dataclass(frozen=True)
class Rung:
    """One step of a StopLadder: `action` runs once `after` seconds have passed since the stop began, and
    again every `every` seconds from then on when that is set (0: at every climb)."""

    after: float
    action: Callable[[], None]
    every: float | None = None


class StopLadder:
    """How a run is stopped: the rungs in order (interrupt first, then harder ones), until `give_up_after`
    seconds, when the process has to be replaced. climb() is called from the run's wait loop."""

    def __init__(self, rungs: Sequence[Rung], give_up_after: float) -> None:
        self.rungs = tuple(rungs)
        self.give_up_after = give_up_after
        self.since: float | None = None
        self._last_done: dict[int, float] = {}

    @property
    def started(self) -> bool:
        return self.since is not None

    def start(self, now: float) -> None:
        """Begin the stop: the rungs due at once (the interrupt) are taken now."""
        self.since = now
        self.climb(now)

    def climb(self, now: float) -> bool:
        """Take every rung that is due; True once the process should be replaced."""
        assert self.since is not None, "climb() before start()"
        waited = now - self.since
        for index, rung in enumerate(self.rungs):
            if waited < rung.after:
                break
            last = self._last_done.get(index)
            if last is None or (rung.every is not None and now - last >= rung.every):
                self._last_done[index] = now
                rung.action()
        return waited > self.give_up_after


def send_signal(pid: int, sig: int) -> None:
    """Signal `pid`, quietly when it is already gone or not ours."""
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def read_available(fd: int) -> bytes:
    """What a non-blocking fd has to read now (b"" when nothing, at end-of-file or on an error)."""
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            break
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
        if len(data) < 65536:
            break
    return b"".join(chunks)


def final_output(fd: int, decoder: codecs.IncrementalDecoder) -> Iterator[dict]:
    """The rest of what the process printed, decoded to the end, as an output chunk (none when empty)."""
    text = decoder.decode(read_available(fd), final=True)
    if text:
        yield output(text)
