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
cleanup to stop. The launcher writes the spec (marshal) to its stdin; it answers one line on stdout: the
program's pid, or the errno and error that prevented the start.

It runs as `python -S -E -c "import watchdog ..."` from its own folder and imports nothing but built-in modules and pdeathsig.py (ctypes)
before it has spawned the server, so that it delays the server's start by a few milliseconds only.
"""

from __future__ import annotations

import os
import sys

STATUS_LINE = "# oi_local watchdog: the server (pid {pid}) ended with status {code}{what}"


def start(argv, *, log_path, env=None, child_signal: int = 9, state_path=None, record_id=None,
          timeout: float | None = None):
    """Start the watchdog and, through it, `argv`; return (the watchdog's Popen, the program's pid) once the
    program is spawned. `child_signal`: what the program gets when the watchdog dies (9: SIGKILL). Raises
    OSError (errno as for a failed exec) when the program cannot be run."""
    return begin(argv, log_path=log_path, env=env, child_signal=child_signal, state_path=state_path,
                 record_id=record_id).wait(timeout)


class Pending:
    """A watchdog on its way: `wait()` gives (its Popen, the program's pid). What the caller does in between
    (reading the model file's header) overlaps with the watchdog's boot."""

    def __init__(self, process, log_path) -> None:
        self.process = process
        self.log_path = log_path

    def wait(self, timeout: float | None = None):
        import select

        from oi_local.env import TIMEOUTS

        process = self.process
        answer: list[str] = []
        try:
            wait = TIMEOUTS.watchdog_start if timeout is None else timeout
            ready, _, _ = select.select([process.stdout], [], [], wait)
            answer = (process.stdout.readline() if ready else b"").decode(errors="replace").split(" ", 2)
            process.stdout.close()
        except (OSError, ValueError):
            pass
        if answer and answer[0] == "pid":
            return process, int(answer[1])
        if process.poll() is None:
            process.kill()
        process.wait()
        if answer and answer[0] == "error" and len(answer) == 3:
            raise OSError(int(answer[1]), answer[2].strip() or "could not be run")
        raise OSError(0, f"the watchdog did not start it (status {process.returncode}; see the log {self.log_path})")


def begin(argv, *, log_path, env=None, child_signal: int = 9, state_path=None, record_id=None) -> Pending:
    """Spawn the watchdog with its spec and return at once (see Pending.wait)."""
    import marshal
    import subprocess
    from pathlib import Path

    from oi_local.env import TIMEOUTS
    from oi_local.serving.logs import open_private
    from oi_local.serving.state import process_create_time

    me = os.getpid()
    spec = {
        "argv": [str(a) for a in argv],
        "log_path": str(log_path),
        "child_signal": int(child_signal),
        "state_path": str(state_path) if state_path else None,
        "record_id": record_id,
        "users": [(me, process_create_time(me) or 0.0)],
        "poll": TIMEOUTS.watchdog_poll,
        "grace": TIMEOUTS.stop_grace,
        "package_root": str(Path(__file__).resolve().parents[2]),
        "sys_path": [p for p in sys.path if p],
    }
    # -S -E: no site-packages scan and no PYTHON* variables: the watchdog itself costs a few milliseconds.
    # Imported (not run as a script) so that its cached bytecode is used: compiling it costs more than running it.
    boot = f"import sys; sys.path[0] = {str(Path(__file__).parent)!r}; import watchdog; watchdog.main()"
    with open_private(Path(log_path)) as log:
        process = subprocess.Popen([sys.executable, "-S", "-E", "-c", boot], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=log, env=env, start_new_session=True)
    try:
        assert process.stdin is not None
        process.stdin.write(marshal.dumps(spec))
        process.stdin.close()
    except OSError:
        pass  # it died at once: wait() says so
    return Pending(process, log_path)


# ---------------------------------------------------------------------------------------------- the watchdog

class _Users:
    """Who still uses the program: the record's users once the record exists, else the starter."""

    def __init__(self, spec: dict) -> None:
        from pathlib import Path

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


def _spawn(argv: list[str], log: int, child_signal: int) -> int:
    """fork + exec by hand (this process has one thread, so that is safe): subprocess and the signal module
    would cost tens of milliseconds to import on a busy machine, all of it before the server starts. The child
    gets its own session, the parent-death signal, /dev/null as stdin and the log as stdout and stderr."""
    from pdeathsig import parent_death_preexec  # this file's folder is sys.path[0] (see start)

    preexec = parent_death_preexec(child_signal)
    errors_read, errors_write = os.pipe()  # close-on-exec: it stays empty when the exec succeeds
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            if preexec is not None:
                preexec()
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.execvp(argv[0], argv)
        except OSError as error:
            os.write(errors_write, f"{error.errno or 0} {error.strerror or error}".encode())
        finally:
            os._exit(127)
    os.close(errors_write)
    failure = os.read(errors_read, 1024).decode(errors="replace")
    os.close(errors_read)
    if failure:
        os.waitpid(pid, 0)
        number, _, message = failure.partition(" ")
        raise OSError(int(number), message)
    return pid


def _exit_status(pid: int) -> int | None:
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # reaped by someone else: its status is lost
        return 255
    return os.waitstatus_to_exitcode(status) if done == pid else None


def main() -> None:
    import marshal

    spec = marshal.loads(sys.stdin.buffer.read())
    log = os.open(spec["log_path"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        pid = _spawn(spec["argv"], log, spec["child_signal"])
    except OSError as error:
        print(f"error {error.errno or 0} {error.strerror or error}", flush=True)
        sys.exit(127)
    print(f"pid {pid}", flush=True)
    sys.stdout.close()
    sys.path[:1] = [spec["package_root"]]  # from here on oi_local itself, psutil and filelock
    sys.path.extend(p for p in spec["sys_path"] if p not in sys.path)
    import signal
    import time

    stopping: list[int] = []
    for name in ("SIGTERM", "SIGHUP", "SIGINT"):
        signal.signal(getattr(signal, name), lambda signum, frame: stopping.append(signum))
    users = _Users(spec)
    next_check = time.monotonic()
    while (code := _exit_status(pid)) is None:  # reaped within 50 ms; users checked every spec["poll"] s
        now = time.monotonic()
        if stopping or (now >= next_check and not users.anyone_left() and users.retire()):
            from oi_local.serving.process import stop_process_tree

            stop_process_tree(pid, spec["grace"])
            sys.exit(0)
        if now >= next_check:
            next_check = now + spec["poll"]
        time.sleep(0.05)
    if stopping:  # stopped on purpose while the program was going down
        sys.exit(0)
    _report_end(log, pid, code)
    _end_like(code)  # the record stays until the next reader drops it: a restart carries its users over


def _report_end(log: int, pid: int, code: int) -> None:
    import signal

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
    import signal

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # mirror the signal, not its core dump
    if -code not in (signal.SIGKILL, signal.SIGSTOP):  # those two have no handler to reset
        signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
    sys.exit(128 - code)


if __name__ == "__main__":
    main()
