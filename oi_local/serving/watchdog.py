"""The watchdog: a small process that runs one server (or other child) for the programs that use it.

Why a process of its own: a server shared by several launchers must outlive the one that started it, so it
cannot be that launcher's child with a parent-death signal; and nothing may be left running once every user
is gone, however they went (`kill -9` included). So:

- the watchdog is started by the first launcher, in its own session, and starts the program as its child
  with the parent-death signal (Linux: the program dies with the watchdog, even on `kill -9`);
- it watches its users, the processes named in the server's record in the state file (or, with no state
  file, the launcher that started it), every TIMEOUTS.watchdog_poll seconds, by pid and start time; when
  none is left it removes the record, stops the program's process tree and exits;
- when the program ends by itself, it writes one line to the log and ends the same way (the same exit
  status, or the same signal), so that its starter's `Popen.poll()` tells what happened to the program.

It needs nothing but polling pids, so it is also the answer where there is no parent-death signal (macOS):
there only a `kill -9` of the watchdog itself would leave its program behind, for the next run's orphan
cleanup to stop. The launcher writes a JSON spec to its stdin; it answers one JSON line (the program's pid,
or the error that prevented the start) on stdout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATUS_LINE = "# oi_local watchdog: the server (pid {pid}) ended with status {code}{what}"


@dataclass
class Watched:
    process: subprocess.Popen  # the watchdog (its exit status mirrors the program's)
    pid: int  # the program


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


def start(argv: list[str] | tuple[str, ...], *, log_path: Path, env: dict[str, str] | None = None,
          child_signal: int = signal.SIGKILL, state_path: Path | None = None, record_id: str | None = None,
          timeout: float | None = None) -> Watched:
    """Start the watchdog and, through it, `argv`; return once the program is spawned.

    Raises OSError (errno as for a failed exec) when the program cannot be run."""
    import select

    from oi_local.env import TIMEOUTS
    from oi_local.serving.logs import open_private
    from oi_local.serving.state import process_create_time

    me = os.getpid()
    spec = {
        "argv": list(argv),
        "log_path": str(log_path),
        "child_signal": int(child_signal),
        "state_path": str(state_path) if state_path else None,
        "record_id": record_id,
        "users": [[me, process_create_time(me) or 0.0]],
        "poll": TIMEOUTS.watchdog_poll,
        "grace": TIMEOUTS.stop_grace,
        "sys_path": [p for p in sys.path if p],
    }
    # -S -E: no site-packages scan and no PYTHON* variables, so the watchdog itself costs a few milliseconds
    boot = f"import sys; sys.path.insert(0, {_package_root()!r}); from oi_local.serving.watchdog import main; main()"
    with open_private(log_path) as log:
        process = subprocess.Popen([sys.executable, "-S", "-E", "-c", boot], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=log, env=env, start_new_session=True)
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(spec).encode())
        process.stdin.close()
        wait = TIMEOUTS.watchdog_start if timeout is None else timeout
        ready, _, _ = select.select([process.stdout], [], [], wait)
        line = process.stdout.readline() if ready else b""
        process.stdout.close()
        answer = json.loads(line) if line.strip() else {}
    except (OSError, ValueError):
        answer = {}
    if "pid" in answer:
        return Watched(process, int(answer["pid"]))
    if process.poll() is None:
        process.kill()
    process.wait()
    if "errno" in answer:
        raise OSError(int(answer["errno"] or 0), answer.get("error") or "could not be run")
    raise OSError(0, f"the watchdog did not start it (status {process.returncode}; see the log {log_path})")


# ---------------------------------------------------------------------------------------------- the watchdog

class _Users:
    """Who still uses the program: the record's users once the record exists, else the starter."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.state_path = Path(spec["state_path"]) if spec.get("state_path") else None
        self.record_id = spec.get("record_id")
        self.users = [(int(pid), float(created)) for pid, created in spec["users"]]
        self._seen_record = False
        self._mtime: int | None = None

    def _refresh(self) -> None:
        if self.state_path is None:
            return
        try:
            mtime = self.state_path.stat().st_mtime_ns
        except OSError:
            return
        if mtime == self._mtime:
            return
        self._mtime = mtime
        from oi_local.serving.state import ServerState

        record = ServerState(self.state_path.parent).record(self.record_id)
        if record is not None:
            self._seen_record = True
            self.users = [(u.pid, u.create_time) for u in record.all_users()]
        elif self._seen_record:  # removed: its last user stopped it, or it was found orphaned
            self.users = []

    def anyone_left(self) -> bool:
        from oi_local.serving.state import process_alive

        self._refresh()
        return any(process_alive(pid, created) for pid, created in self.users)

    def retire(self) -> bool:
        """Remove the record unless a user joined meanwhile; True when the program is to be stopped."""
        if self.state_path is None:
            return True
        from oi_local.serving.state import ServerState

        try:
            return ServerState(self.state_path.parent).retire(self.record_id)
        except OSError:
            return True


def main() -> None:
    spec = json.loads(sys.stdin.read())
    from oi_local.serving.process import parent_death_preexec

    log = os.open(spec["log_path"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        child = subprocess.Popen(spec["argv"], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True, preexec_fn=parent_death_preexec(spec["child_signal"]))
    except OSError as error:
        print(json.dumps({"error": error.strerror or str(error), "errno": error.errno}), flush=True)
        sys.exit(127)
    print(json.dumps({"pid": child.pid}), flush=True)
    sys.stdout.close()
    sys.path.extend(p for p in spec["sys_path"] if p not in sys.path)  # psutil, filelock

    stopping: list[int] = []
    for name in ("SIGTERM", "SIGHUP", "SIGINT"):
        signal.signal(getattr(signal, name), lambda signum, frame: stopping.append(signum))
    users = _Users(spec)
    while True:
        try:
            code = child.wait(timeout=spec["poll"])
            break
        except subprocess.TimeoutExpired:
            pass
        if stopping or (not users.anyone_left() and users.retire()):
            from oi_local.serving.process import stop_process_tree

            stop_process_tree(child.pid, spec["grace"], child)
            sys.exit(0)
    if stopping:  # stopped on purpose while the program was going down
        sys.exit(0)
    _report_end(log, child.pid, code)
    _end_like(code)  # the record stays until the next reader drops it: a restart carries its users over


def _report_end(log: int, pid: int, code: int) -> None:
    what = ""
    if code < 0:
        try:
            what = f" (signal {signal.Signals(-code).name})"
        except ValueError:
            what = f" (signal {-code})"
    try:
        os.write(log, (STATUS_LINE.format(pid=pid, code=code, what=what) + "\n").encode())
    except OSError:
        pass


def _end_like(code: int) -> None:
    if code >= 0:
        sys.exit(code)
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # mirror the signal, not its core dump
    if -code not in (signal.SIGKILL, signal.SIGSTOP):  # those two have no handler to reset
        signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
    sys.exit(128 - code)
