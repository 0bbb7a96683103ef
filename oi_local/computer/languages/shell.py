"""Shell: one persistent bash, so `cd`, `export`, variables and functions carry over between runs.

How a run works. bash runs a small loop that reads one line per run from a private command pipe (fd 57): the
path prefix of the run's files. It sources `<prefix>.sh` (the code) with stdin from `<prefix>.in`, a FIFO
made for this run whose only writer is us, and writes `D <exit code> <cwd>` to a private control pipe
(fd 58) when the code is done. stdout and stderr share one pipe, so their order is kept.

Active lines are off by default: they need a DEBUG trap, which bash runs before every command and which
makes tight pure-bash loops about 13x slower (bench/bench_computer.py). With `Shell.active_lines = True`
the trap writes `L <line>` to the control pipe before each command of the code.

Waiting for input. Nobody types into a run, so a command that reads stdin would hang. While a run is
going, the process tree of the shell is checked every 0.25 s: a process sleeping in read() (or in
epoll_wait() on an epoll set that holds it) on the run's FIFO is waiting for input. Seen twice in a row,
the run is stopped and the model told what to do instead. This is exact, not a guess from silence: we
never write to the FIFO, so such a read can only end when we end it. The check reads /proc/PID/syscall
and /proc/PID/fd; where those cannot be read (not Linux), the per-run timeout still ends the run. The
shell runs in its own session without a controlling terminal, so programs that open /dev/tty for a
password (sudo, ssh) fail at once with their own message instead of prompting on the user's terminal.

Stopping. stop(), the timeout and the input check all start the run's StopLadder (_Run.stop_ladder): SIGINT
to the shell and to the run's foreground processes (not to background jobs: see shell_processes.py), again
every 0.3 s until the run ends. The foreground command dies of it; bash, while the code runs, traps it: the
trap returns from the current function or the sourced code and sets a DEBUG trap (with `extdebug`, a DEBUG
trap returning 2 makes a function or sourced file return), so every level unwinds and the rest of the run
is skipped. Nothing of this costs anything until a stop: the DEBUG trap exists only then. Background jobs
keep running. If the run has not ended 1 s (TIMEOUTS.code_stop_step) after the stop, the FIFO is closed (a
reader sees end-of-file) and the foreground processes get SIGTERM, after 2 s SIGKILL, and after 3 s the
shell itself is replaced (then the working directory is kept but variables are lost, and the model is told).
"""

from __future__ import annotations

import codecs
import os
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oi_local.computer.languages.base import (
    ActiveLineThrottle,
    active_line,
    find_runtime,
    missing_runtime,
    output,
    run_timeout,
    timeout_message,
)
from oi_local.computer.languages.piped_process import (
    PipedLanguage,
    Rung,
    StopLadder,
    final_output,
    read_available,
)
from oi_local.computer.languages.shell_processes import (
    command_line,
    file_id,
    interrupt_run,
    signal_foreground,
    uptime,
    waiting_for_input,
    waiting_message,
)
from oi_local.env import TIMEOUTS

CHECK_INTERVAL = 0.25
SIGINT_REPEAT = 0.3
MAX_OUTPUT_BYTES = 8 * 2**20

_LOOP = r"""
__oi_unwind() {
  __oi_unwound=1
  shopt -s extdebug
  set -T
  trap 'if (( ${#FUNCNAME[@]} )) || [[ ${BASH_SOURCE[0]} == "$__oi_p.sh" ]]; then return 2; fi; true' DEBUG
}
trap ': oi-local idle' INT
while true; do
  IFS= read -r -u 57 __oi_p || { (( $? > 128 )) && continue; break; }
  trap - DEBUG  # a stop that came as the last run ended may have left its unwinding behind
  if [[ -n $__oi_unwound ]]; then set +T; shopt -u extdebug; __oi_unwound=; fi
  trap '__oi_unwind; return 130 2>/dev/null' INT
  if [[ -n $__oi_lines ]]; then
    set -T
    trap 'if [[ ${BASH_SOURCE[0]} == "$__oi_p.sh" ]]; then printf "L %s\n" "$LINENO" >&58; fi' DEBUG
  fi
  . "$__oi_p.sh" 57<&- < "$__oi_p.in"
  __oi_rc=$?
  trap ': oi-local idle' INT
  trap - DEBUG
  if [[ -n $__oi_lines || -n $__oi_unwound ]]; then set +T; fi
  if [[ -n $__oi_unwound ]]; then shopt -u extdebug; __oi_unwound=; fi
  printf 'D %s %s\n' "$__oi_rc" "$PWD" >&58
done
"""


def _utf8_decoder() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")(errors="replace")


@dataclass(eq=False)
class _Run:
    """One run: its files, what it has printed and reported, and its stop (see the module docstring)."""

    process: subprocess.Popen
    prefix: str
    fifo_writer: int | None
    limit: float | None
    started: float
    began: float = field(default_factory=uptime)  # on the clock of process start times
    decoder: codecs.IncrementalDecoder = field(default_factory=_utf8_decoder)
    throttle: ActiveLineThrottle = field(default_factory=ActiveLineThrottle)
    next_check: float = 0.0
    suspects: set[int] = field(default_factory=set)
    control: bytes = b""
    total_output: int = 0
    exit_code: int | None = None

    def __post_init__(self) -> None:
        self.fifo_id = file_id(self.prefix + ".in")
        self.next_check = self.started + CHECK_INTERVAL
        self.ladder = self.stop_ladder()

    @property
    def stdout_fd(self) -> int:
        return self.process.stdout.fileno()

    def end_input(self) -> None:
        """Close our end of the FIFO: a reader that survived SIGINT sees end-of-file."""
        if self.fifo_writer is not None:
            os.close(self.fifo_writer)
            self.fifo_writer = None

    def interrupt(self) -> None:
        interrupt_run(self.process.pid, self.began)  # each SIGINT leaves one function level of the code

    def signal_foreground(self, sig: int) -> None:
        signal_foreground(self.process.pid, sig, self.began)

    def stop_ladder(self) -> StopLadder:
        """SIGINT again and again, then end-of-file and SIGTERM, then SIGKILL, then the shell is replaced."""
        step = TIMEOUTS.code_stop_step

        def end_input_and_terminate() -> None:
            self.end_input()
            self.signal_foreground(signal.SIGTERM)

        return StopLadder(
            [
                Rung(0.0, self.interrupt, every=SIGINT_REPEAT),
                Rung(step, end_input_and_terminate),
                Rung(2 * step, lambda: self.signal_foreground(signal.SIGKILL)),
            ],
            give_up_after=3 * step,
        )

    def settle_ladder(self) -> StopLadder:
        """For a run nobody reads any more: SIGINT, SIGKILL from halfway, then the shell is replaced."""
        step = TIMEOUTS.code_stop_step
        return StopLadder(
            [
                Rung(0.0, self.interrupt, every=SIGINT_REPEAT),
                Rung(1.5 * step, lambda: self.signal_foreground(signal.SIGKILL), every=0.0),
            ],
            give_up_after=3 * step,
        )


class Shell(PipedLanguage):
    name = "shell"
    aliases = ("bash", "sh", "zsh")
    executables = ("bash",)
    active_lines = False  # see the module docstring: the DEBUG trap costs tight loops dearly

    def __init__(self, computer: Any = None) -> None:
        super().__init__(computer)
        self.last_exit_code: int | None = None
        self._dir: str | None = None
        self._cwd: str | None = None
        self._runs = 0
        self._exit_reported = False

    @property
    def cwd(self) -> str:
        """The folder the next run starts in (as the last run left it)."""
        return self._cwd if self._cwd and os.path.isdir(self._cwd) else os.getcwd()

    # -- the seed's language interface ------------------------------------------------------------------

    def run(self, code: str) -> Iterator[dict]:
        bash = find_runtime(self.executables)
        if bash is None:
            yield output(missing_runtime("Shell", self.executables))
            return
        with self._lock:
            note = self._ensure_shell(bash)
        if note:
            yield output(note)
        yield from self._run(code)

    def terminate(self) -> None:
        super().terminate()
        if self._dir:
            for path in Path(self._dir).glob("*"):
                path.unlink(missing_ok=True)
            try:
                os.rmdir(self._dir)
            except OSError:
                pass
            self._dir = None

    # -- the shell process ------------------------------------------------------------------------------

    def _ensure_shell(self, bash: str) -> str:
        if self._process is not None and self._process.poll() is None:
            return ""
        note = ""
        if self._process is not None:
            if not self._exit_reported:
                note = (
                    f"[The shell had exited (code {self._process.returncode}); a new one was started in "
                    f"{self._cwd}. Variables, functions and unexported settings from earlier runs are gone.]\n"
                )
            self._kill()  # reaps it and closes our ends of its pipes
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="oi-local-shell-")
        env = dict(os.environ)
        env.pop("BASH_ENV", None)
        env.pop("ENV", None)
        env.setdefault("PAGER", "cat")
        env.setdefault("GIT_PAGER", "cat")

        def arguments(command_fd: int, control_fd: int) -> list[str]:
            boot = (
                f'exec 57<&{command_fd} 58>&{control_fd} {command_fd}<&- {control_fd}>&-\n'
                "unset OI_LOCAL_FDS\n" + ("__oi_lines=1\n" if self.active_lines else "") + _LOOP
            )
            return [bash, "--noprofile", "--norc", "-c", boot]

        self._start_process(arguments, env, self.cwd)
        self._exit_reported = False
        return note

    # -- one run ------------------------------------------------------------------------------------------

    def _run(self, code: str) -> Iterator[dict]:
        run = self._open_run(code)
        finished = False
        try:
            os.write(self._command_fd, (run.prefix + "\n").encode())
            while run.exit_code is None:
                yield from self._wait(run)
            if self._process is run.process:
                yield from final_output(run.stdout_fd, run.decoder)
            self.last_exit_code = run.exit_code
            if run.exit_code and not run.ladder.started and run.process.poll() is None:
                yield output(f"\n[exit code {run.exit_code}]\n")
            finished = True
            yield active_line(None)
        finally:
            self._close_run(run, finished)

    def _open_run(self, code: str) -> _Run:
        """Write the run's code file and make its stdin FIFO (whose only writer is us)."""
        process = self._process
        assert process is not None and self._dir is not None
        self._runs += 1
        prefix = os.path.join(self._dir, f"run{self._runs}")
        Path(prefix + ".sh").write_text(code if code.endswith("\n") else code + "\n")
        os.mkfifo(prefix + ".in", 0o600)
        fifo_writer = os.open(prefix + ".in", os.O_RDWR | os.O_NONBLOCK)
        self._stop_requested.clear()
        self._running = True
        return _Run(process, prefix, fifo_writer, run_timeout(self.computer), time.monotonic())

    def _wait(self, run: _Run) -> Iterator[dict]:
        """One round of a run: pass on what it printed and reported, then watch it or carry its stop on."""
        wait = max(0.0, run.next_check - time.monotonic())
        if run.ladder.started:
            wait = min(wait, 0.05)
        readable, _, _ = select.select([run.stdout_fd, self._control_fd], [], [], wait)
        if run.stdout_fd in readable:
            yield from self._read_output(run)
        if self._control_fd in readable:
            yield from self._read_control(run)
        if run.exit_code is not None:
            return
        if run.process.poll() is not None:
            yield from self._shell_exited(run)
            return
        now = time.monotonic()
        if run.ladder.started:
            yield from self._carry_stop_on(run, now)
        else:
            yield from self._watch(run, now)

    def _read_output(self, run: _Run) -> Iterator[dict]:
        data = read_available(run.stdout_fd)
        if data:
            run.total_output += len(data)
            text = run.decoder.decode(data)
            if text:
                yield output(text)
        if run.total_output > MAX_OUTPUT_BYTES and not run.ladder.started:
            yield output(f"\n[Stopped: the run printed more than {MAX_OUTPUT_BYTES // 2**20} MiB.]\n")
            self._stop_requested.set()

    def _read_control(self, run: _Run) -> Iterator[dict]:
        """`L <line>` is an active line, `D <exit code> <cwd>` the end of the run."""
        run.control += read_available(self._control_fd)
        *lines, run.control = run.control.split(b"\n")
        for line in lines:
            if line.startswith(b"L "):
                number = int(line[2:] or 0)
                if run.throttle.accept(number, time.monotonic()):
                    yield active_line(number)
            elif line.startswith(b"D "):
                code_text, _, cwd = line[2:].decode(errors="replace").partition(" ")
                run.exit_code = int(code_text)
                self._cwd = cwd or self._cwd

    def _shell_exited(self, run: _Run) -> Iterator[dict]:
        yield from final_output(run.stdout_fd, run.decoder)
        run.exit_code = run.process.returncode
        self._exit_reported = True
        yield output(
            f"\n[The shell exited with code {run.exit_code}. The next run starts a new shell in "
            f"{self._cwd or os.getcwd()}; variables and functions from earlier runs are gone.]\n"
        )

    def _watch(self, run: _Run, now: float) -> Iterator[dict]:
        """Before a stop: the time limit, the waiting-for-input check, and a stop asked for."""
        if run.limit is not None and now - run.started > run.limit:
            yield output(timeout_message(run.limit))
            self._stop_requested.set()
        if now >= run.next_check:
            run.next_check = now + CHECK_INTERVAL
            yield from self._check_input(run)
        if self._stop_requested.is_set():
            run.ladder.start(now)

    def _check_input(self, run: _Run) -> Iterator[dict]:
        """Stop the run when the same process is seen waiting for input twice in a row."""
        waiting = waiting_for_input(run.process.pid, run.fifo_id)
        if waiting and waiting & run.suspects:
            pid = min(waiting & run.suspects)
            yield output(waiting_message(None if pid == run.process.pid else command_line(pid)))
            self._stop_requested.set()
        run.suspects = waiting

    def _carry_stop_on(self, run: _Run, now: float) -> Iterator[dict]:
        if run.ladder.climb(now):
            self._kill()
            yield output(
                "\n[The shell did not stop, so it was replaced. The next run starts in "
                f"{self._cwd or os.getcwd()}; variables and functions from earlier runs are gone.]\n"
            )
            run.exit_code = -1

    def _close_run(self, run: _Run, finished: bool) -> None:
        self._running = False
        run.end_input()
        if not finished and self._process is run.process and run.exit_code is None:
            # The consumer stopped reading mid-run (Ctrl-C in the terminal): stop the code too.
            self._settle(run)
        for suffix in (".sh", ".in"):
            try:
                os.unlink(run.prefix + suffix)
            except OSError:
                pass

    def _settle(self, run: _Run) -> None:
        """After an abandoned run: interrupt it and wait for the shell's done marker, so the next run starts
        clean; a shell that does not finish in time is replaced."""
        ladder = run.settle_ladder()
        ladder.start(time.monotonic())
        control = b""
        while run.process.poll() is None:
            readable, _, _ = select.select([run.stdout_fd, self._control_fd], [], [], 0.05)
            if run.stdout_fd in readable:
                read_available(run.stdout_fd)
            if self._control_fd in readable:
                control += read_available(self._control_fd)
                if b"\nD " in b"\n" + control:
                    return
            if ladder.climb(time.monotonic()):
                break
        self._kill()

