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

Stopping. stop(), the timeout and the input check all send SIGINT to the shell and to the run's foreground
processes (not to background jobs: see _signal_foreground), again every 0.3 s until the run ends. The
foreground command dies of it; bash, while the code runs, traps it:
the trap returns from the current function or the sourced code and sets a DEBUG trap (with `extdebug`,
a DEBUG trap returning 2 makes a function or sourced file return), so every level unwinds and the rest of
the run is skipped. Nothing of this costs anything until a stop: the DEBUG trap exists only then. Background
jobs keep running. If the run has not ended 1 s after
the stop, the FIFO is closed (a reader sees end-of-file) and the foreground processes get SIGTERM, after
2 s SIGKILL, and after 3 s the shell itself is replaced (then the working directory is kept but
variables are lost, and the model is told).
"""

from __future__ import annotations

import codecs
import os
import platform
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
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
    final_output,
    read_available,
    send_signal,
)

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

# read-family and epoll-wait syscall numbers, by machine: the calls a process sleeps in when waiting for stdin
_SYSCALLS = {
    "x86_64": ({0, 17, 19, 295}, {232, 281, 441}),
    "aarch64": ({63, 65, 67, 69}, {22, 441}),
}


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
        if self._process is not None and not self._exit_reported:
            note = (
                f"[The shell had exited (code {self._process.returncode}); a new one was started in "
                f"{self._cwd}. Variables, functions and unexported settings from earlier runs are gone.]\n"
            )
            self._kill()
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

        cwd = self._cwd if self._cwd and os.path.isdir(self._cwd) else None
        self._start_process(arguments, env, cwd)
        self._exit_reported = False
        return note

    # -- one run ------------------------------------------------------------------------------------------

    def _run(self, code: str) -> Iterator[dict]:
        process = self._process
        assert process is not None and self._dir is not None
        self._runs += 1
        prefix = os.path.join(self._dir, f"run{self._runs}")
        Path(prefix + ".sh").write_text(code if code.endswith("\n") else code + "\n")
        os.mkfifo(prefix + ".in", 0o600)
        fifo_writer: int | None = os.open(prefix + ".in", os.O_RDWR | os.O_NONBLOCK)
        fifo_id = _file_id(prefix + ".in")
        self._stop_requested.clear()
        self._running = True
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        throttle = ActiveLineThrottle()
        limit = run_timeout(self.computer)
        started = time.monotonic()
        next_check = started + CHECK_INTERVAL
        stopping_since: float | None = None
        escalation = 0
        last_sigint = float("-inf")
        suspects: set[int] = set()
        control = b""
        total_output = 0
        exit_code: int | None = None
        stdout_fd = process.stdout.fileno()
        finished = False
        try:
            os.write(self._command_fd, (prefix + "\n").encode())
            while exit_code is None:
                now = time.monotonic()
                wait = max(0.0, next_check - now)
                if stopping_since is not None:
                    wait = min(wait, 0.05)
                readable, _, _ = select.select([stdout_fd, self._control_fd], [], [], wait)
                if stdout_fd in readable:
                    data = read_available(stdout_fd)
                    if data:
                        total_output += len(data)
                        text = decoder.decode(data)
                        if text:
                            yield output(text)
                    if total_output > MAX_OUTPUT_BYTES and stopping_since is None:
                        yield output(f"\n[Stopped: the run printed more than {MAX_OUTPUT_BYTES // 2**20} MiB.]\n")
                        self._stop_requested.set()
                if self._control_fd in readable:
                    control += read_available(self._control_fd)
                    *lines, control = control.split(b"\n")
                    for line in lines:
                        if line.startswith(b"L "):
                            number = int(line[2:] or 0)
                            if throttle.accept(number, time.monotonic()):
                                yield active_line(number)
                        elif line.startswith(b"D "):
                            code_text, _, cwd = line[2:].decode(errors="replace").partition(" ")
                            exit_code = int(code_text)
                            self._cwd = cwd or self._cwd
                if exit_code is not None:
                    break
                if process.poll() is not None:
                    yield from final_output(stdout_fd, decoder)
                    exit_code = process.returncode
                    self._exit_reported = True
                    yield output(
                        f"\n[The shell exited with code {exit_code}. The next run starts a new shell in "
                        f"{self._cwd or os.getcwd()}; variables and functions from earlier runs are gone.]\n"
                    )
                    break
                now = time.monotonic()
                if stopping_since is None:
                    if limit is not None and now - started > limit:
                        yield output(timeout_message(limit))
                        self._stop_requested.set()
                    if now >= next_check:
                        next_check = now + CHECK_INTERVAL
                        waiting = self._waiting_for_input(process.pid, fifo_id)
                        if waiting and waiting & suspects:
                            pid = min(waiting & suspects)
                            yield output(_waiting_message(None if pid == process.pid else _command_line(pid)))
                            self._stop_requested.set()
                        suspects = waiting
                    if self._stop_requested.is_set():
                        stopping_since = now
                        _interrupt_run(process.pid)
                        last_sigint = now
                else:
                    waited = now - stopping_since
                    if now - last_sigint >= SIGINT_REPEAT:
                        # Again and again: each SIGINT leaves one function level of the code.
                        _interrupt_run(process.pid)
                        last_sigint = now
                    if escalation == 0 and waited > 1.0:
                        escalation = 1
                        if fifo_writer is not None:  # end-of-file for a reader that survived SIGINT
                            os.close(fifo_writer)
                            fifo_writer = None
                        _signal_foreground(process.pid, signal.SIGTERM)
                    elif escalation == 1 and waited > 2.0:
                        escalation = 2
                        _signal_foreground(process.pid, signal.SIGKILL)
                    elif escalation == 2 and waited > 3.0:
                        self._kill()
                        yield output(
                            "\n[The shell did not stop, so it was replaced. The next run starts in "
                            f"{self._cwd or os.getcwd()}; variables and functions from earlier runs are gone.]\n"
                        )
                        exit_code = -1
                        break
            if self._process is process:
                yield from final_output(stdout_fd, decoder)
            self.last_exit_code = exit_code
            if exit_code and stopping_since is None and process.poll() is None:
                yield output(f"\n[exit code {exit_code}]\n")
            finished = True
            yield active_line(None)
        finally:
            self._running = False
            if fifo_writer is not None:
                os.close(fifo_writer)
            if not finished and self._process is process and exit_code is None:
                # The consumer stopped reading mid-run (Ctrl-C in the terminal): stop the code too.
                self._settle(process)
            for suffix in (".sh", ".in"):
                try:
                    os.unlink(prefix + suffix)
                except OSError:
                    pass

    def _settle(self, process: subprocess.Popen) -> None:
        """After an abandoned run: interrupt it and wait for the shell's done marker, so the next run starts
        clean; a shell that does not finish within 3 s is replaced."""
        deadline = time.monotonic() + 3.0
        last_sigint = float("-inf")
        control = b""
        while time.monotonic() < deadline and process.poll() is None:
            now = time.monotonic()
            if now - last_sigint >= SIGINT_REPEAT:
                _interrupt_run(process.pid)
                last_sigint = now
            if now > deadline - 1.5:
                _signal_foreground(process.pid, signal.SIGKILL)
            readable, _, _ = select.select([process.stdout.fileno(), self._control_fd], [], [], 0.05)
            if process.stdout.fileno() in readable:
                read_available(process.stdout.fileno())
            if self._control_fd in readable:
                control += read_available(self._control_fd)
                if b"\nD " in b"\n" + control:
                    return
        self._kill()

    @staticmethod
    def _waiting_for_input(shell_pid: int, fifo_id: tuple[int, int] | None) -> set[int]:
        """PIDs in the shell's tree that sleep reading the run's stdin FIFO."""
        if fifo_id is None:
            return set()
        reads, epolls = _SYSCALLS.get(platform.machine(), (set(), set()))
        pids = [shell_pid] + _descendants(shell_pid)
        waiting = set()
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/syscall").read_text().split()
            except OSError:
                continue
            if not fields or not fields[0].isdigit() or len(fields) < 2:
                continue
            number, first_argument = int(fields[0]), int(fields[1], 16)
            if number in reads:
                if _file_id(f"/proc/{pid}/fd/{first_argument}") == fifo_id:
                    waiting.add(pid)
            elif number in epolls:
                if any(_file_id(f"/proc/{pid}/fd/{fd}") == fifo_id for fd in _epoll_targets(pid, first_argument)):
                    waiting.add(pid)
        return waiting


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _epoll_targets(pid: int, epoll_fd: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/fdinfo/{epoll_fd}").read_text()
    except OSError:
        return []
    targets = []
    for line in text.splitlines():
        if line.startswith("tfd:"):
            parts = line.split()
            if len(parts) > 1 and parts[1].isdigit():
                targets.append(int(parts[1]))
    return targets


def _descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _command_line(pid: int) -> str:
    try:
        parts = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        text = " ".join(p.decode(errors="replace") for p in parts if p)
    except OSError:
        text = ""
    return text[:120]


def _waiting_message(command: str | None) -> str:
    """`command` is the waiting program's command line; None when it is the shell itself (the `read` builtin)."""
    shown = "a `read` in the code" if command is None else (f"`{command}`" if command else "a command")
    return (
        f"\n[Stopped: {shown} was waiting for input from the keyboard (stdin), and nobody can type here. "
        "Give the input non-interactively instead: pipe it (`echo yes | command`), use a here-document, "
        "or use the command's non-interactive option (for example -y, --yes, --batch).]\n"
    )


def _interrupt_run(shell_pid: int) -> None:
    """SIGINT to the shell (its trap unwinds the code) and to the run's foreground processes."""
    send_signal(shell_pid, signal.SIGINT)
    _signal_foreground(shell_pid, signal.SIGINT)


def _signal_foreground(shell_pid: int, sig: int) -> None:
    """Signal the run's foreground processes: each child of the shell with everything under it, except the
    children that are background jobs. A non-interactive bash starts a background job with SIGINT and
    SIGQUIT both ignored (a program that ignores SIGINT itself rarely ignores SIGQUIT too); the programs
    inside a background subshell do not inherit that, so a whole subtree is spared or signalled."""
    import psutil

    try:
        children = psutil.Process(shell_pid).children()
    except psutil.Error:
        return
    background = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGQUIT - 1))
    for child in children:
        if _ignored_signals(child.pid) & background == background:
            continue
        try:
            tree = [child.pid] + [grandchild.pid for grandchild in child.children(recursive=True)]
        except psutil.Error:
            tree = [child.pid]
        for pid in tree:
            send_signal(pid, sig)


def _ignored_signals(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    ignored = next((line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), "0")
    return int(ignored, 16)
