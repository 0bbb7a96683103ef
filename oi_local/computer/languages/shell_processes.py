"""What the processes under the persistent shell are doing: which are the run's foreground commands (those
a stop signals), which are background jobs (which a stop spares), and which wait for input on the run's stdin.

All of it reads /proc (Linux); elsewhere nothing is found waiting and every child counts as foreground.

Background jobs. A non-interactive bash starts a background job with SIGINT and SIGQUIT both ignored (a
program that ignores SIGINT itself rarely ignores SIGQUIT too); the programs inside a background subshell
inherit that, so a whole subtree is spared or signalled. But bash sets those dispositions in the child only
after fork(), and bash 5.2 kills such a child outright when a trapped signal (our shell traps SIGINT)
reaches it before then. So a child is judged by its SigIgn only once it has settled: children started before
the run began are background jobs by construction (the shell reports a run done only when its foreground
part is over) and are never signalled; a child that still runs the shell's own program and is younger than
SETTLE_S is left for the next round (a stop repeats its SIGINT every few tenths of a second).
"""

from __future__ import annotations

import os
import platform
import signal
import time
from pathlib import Path

from oi_local.computer.languages.piped_process import send_signal

SETTLE_S = 0.1

# read-family and epoll-wait syscall numbers, by machine: the calls a process sleeps in when waiting for stdin
_SYSCALLS = {
    "x86_64": ({0, 17, 19, 295}, {232, 281, 441}),
    "aarch64": ({63, 65, 67, 69}, {22, 441}),
}
_BACKGROUND = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGQUIT - 1))


def uptime() -> float:
    """Seconds since boot on the clock /proc gives process start times in (CLOCK_BOOTTIME; 0.0 elsewhere)."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(boottime) if boottime is not None else 0.0


def interrupt_run(shell_pid: int, run_began: float) -> None:
    """SIGINT to the shell (its trap unwinds the code) and to the run's foreground processes."""
    send_signal(shell_pid, signal.SIGINT)
    signal_foreground(shell_pid, signal.SIGINT, run_began)


def signal_foreground(shell_pid: int, sig: int, run_began: float) -> None:
    """Signal the run's foreground processes: each child of the shell with everything under it, except the
    background jobs (see the module docstring). `run_began` is uptime() when the run began."""
    import psutil

    try:
        children = psutil.Process(shell_pid).children()
    except psutil.Error:
        return
    shell_program = _program(shell_pid)
    for child in children:
        if not _is_foreground(child.pid, shell_program, run_began):
            continue
        try:
            tree = [child.pid] + [grandchild.pid for grandchild in child.children(recursive=True)]
        except psutil.Error:
            tree = [child.pid]
        for pid in tree:
            send_signal(pid, sig)


def _is_foreground(pid: int, shell_program: str | None, run_began: float) -> bool:
    started = _started(pid)
    if started is not None and started + 1 / _ticks_per_second() <= run_began:
        return False  # a job of an earlier run
    if _ignored_signals(pid) & _BACKGROUND == _BACKGROUND:
        return False
    unsettled = (
        started is not None and shell_program is not None and _program(pid) == shell_program
        and uptime() - started < SETTLE_S
    )
    return not unsettled


def _started(pid: int) -> float | None:
    """When `pid` started, in seconds since boot, to the clock tick below (psutil's create_time adds a boot
    time that is only known to the second)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        # fields from the third on: the command name in the second may hold spaces and parentheses
        return int(text[text.rfind(")") + 2:].split()[19]) / _ticks_per_second()
    except (OSError, ValueError, IndexError):
        return None


def _ticks_per_second() -> int:
    return os.sysconf("SC_CLK_TCK")


def _program(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def _ignored_signals(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    ignored = next((line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), "0")
    return int(ignored, 16)


# -- waiting for input ----------------------------------------------------------------------------------

def waiting_for_input(shell_pid: int, fifo_id: tuple[int, int] | None) -> set[int]:
    """PIDs in the shell's tree that sleep reading the run's stdin FIFO (read(), or epoll_wait() on a set
    that holds it)."""
    if fifo_id is None:
        return set()
    reads, epolls = _SYSCALLS.get(platform.machine(), (set(), set()))
    waiting = set()
    for pid in [shell_pid] + _descendants(shell_pid):
        try:
            fields = Path(f"/proc/{pid}/syscall").read_text().split()
        except OSError:
            continue
        if not fields or not fields[0].isdigit() or len(fields) < 2:
            continue
        number, first_argument = int(fields[0]), int(fields[1], 16)
        if number in reads:
            if file_id(f"/proc/{pid}/fd/{first_argument}") == fifo_id:
                waiting.add(pid)
        elif number in epolls:
            if any(file_id(f"/proc/{pid}/fd/{fd}") == fifo_id for fd in _epoll_targets(pid, first_argument)):
                waiting.add(pid)
    return waiting


def waiting_message(command: str | None) -> str:
    """`command` is the waiting program's command line; None when it is the shell itself (the `read` builtin)."""
    shown = "a `read` in the code" if command is None else (f"`{command}`" if command else "a command")
    return (
        f"\n[Stopped: {shown} was waiting for input from the keyboard (stdin), and nobody can type here. "
        "Give the input non-interactively instead: pipe it (`echo yes | command`), use a here-document, "
        "or use the command's non-interactive option (for example -y, --yes, --batch).]\n"
    )


def file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def command_line(pid: int) -> str:
    try:
        parts = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        text = " ".join(p.decode(errors="replace") for p in parts if p)
    except OSError:
        text = ""
    return text[:120]


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
