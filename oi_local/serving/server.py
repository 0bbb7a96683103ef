"""ManagedServer: an OpenAI-compatible model server this program started (or found running), and its lifetime.

A runner (oi_local.serving.runners.*) says what to run (a ServerSpec); `start_server` starts it
(oi_local.serving.launch: a free port on 127.0.0.1, a fresh API key handed over where only its owner can read
it, a log of its own, the record written before the server starts, the watchdog that stops it when no program
uses it any more, the wait until GET /v1/models answers 200 with the key). Here: the handle on a running
server, what happened to it (oi_local.serving.diagnose), releasing it, and starting it again once when it
dies mid-chat.

One server per model and settings: starting or reusing happens under a lock per ServerKey, so launchers that
start at the same time wait for the first one and reuse its server. Each handle (`ManagedServer`) is one
user in the server's record; `stop()` releases the handle, and the last user's `stop()` stops the server.
A user that dies without stopping (kill -9) is noticed by the watchdog.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from oi_local.endpoint import Endpoint
from oi_local.env import TIMEOUTS
from oi_local.errors import OiLocalError
from oi_local.machine.paths import AppPaths
from oi_local.serving import logs
from oi_local.serving.diagnose import ServerError, diagnose, runner_name, signal_name
from oi_local.serving.options import ServerOptions, ServerSpec
from oi_local.serving.ports import LOOPBACK
from oi_local.serving.process import forget_at_exit, stop_at_exit, stop_process_tree
from oi_local.serving.state import (
    ServerRecord,
    ServerState,
    live_users,
    process_alive,
    server_alive,
)

__all__ = ["ManagedServer", "ServerError", "answers_http", "diagnose", "models_status", "start_server",
           "stop_process_tree"]

log = logging.getLogger(__name__)

STOP_GRACE_S = TIMEOUTS.stop_grace
_STATUS = re.compile(r"# oi_local watchdog: the server \(pid (\d+)\) ended with status (-?\d+)")
log_trimmer = logs.LogTrimmer()


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return LOOPBACK
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _http_status(host: str, port: int, path: str, api_key: str | None, timeout: float) -> int | None:
    """HTTP status of GET `path` (with the key as a bearer token), or None when nothing answers."""
    import http.client

    conn = http.client.HTTPConnection(_url_host(host).strip("[]"), port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def models_status(host: str, port: int, api_key: str | None, timeout: float = TIMEOUTS.health_request) -> int | None:
    """HTTP status of GET /v1/models with the key, or None when nothing answers."""
    return _http_status(host, port, "/v1/models", api_key, timeout)


def answers_http(host: str, port: int, timeout: float = TIMEOUTS.health_request) -> bool:
    """Something speaks HTTP on host:port (GET / gets any status). llama-cpp-python's server answers /v1/models
    only between generations (the route waits for the model), but its other routes at once: a server busy
    with another user's reply is alive."""
    return _http_status(host, port, "/", None, timeout) is not None


def _endpoint(record: ServerRecord, spec: ServerSpec) -> Endpoint:
    return Endpoint(api_base=f"http://{_url_host(record.key.host)}:{record.port}/v1", model_id=record.key.model_id,
                    api_key=record.api_key, context_window=spec.fit.n_ctx, max_tokens=spec.fit.max_tokens,
                    provider=record.key.runner, pid=record.pid, log_path=Path(record.log_path))


def tail_message(lines: Sequence[str]) -> str:
    return " Last lines:\n  " + "\n  ".join(lines[-8:]) if lines else ""


class ManagedServer:
    """A running OpenAI-compatible server: `.endpoint` to talk to it, `.stop()` to end this handle on it.

    `reused` is True when this handle joined a server another handle (often another run) had started. The
    server runs while a program uses it: `stop()` of the handle that started it stops it unless another
    program holds a handle too, and the last program's `stop()` (or death) ends it. Use as a context manager,
    or rely on the exit hooks.
    """

    def __init__(self, record: ServerRecord, *, spec: ServerSpec, options: ServerOptions, paths: AppPaths,
                 token: str, process=None, reused: bool) -> None:
        self.endpoint = _endpoint(record, spec)
        self.runner = record.key.runner
        self.host = record.key.host
        self.port = record.port
        self.pid = record.pid
        self.process = process  # the watchdog this handle started (its exit status is the server's); else None
        self.log_path = Path(record.log_path)
        self.command = list(record.command)
        self.model_path = Path(spec.model_path)
        self.reused = reused
        self._record = record
        self._spec, self._options, self._paths = spec, options, paths
        self._state = ServerState(paths.state)
        self._token = token
        self._stopped = False

    # -- description ---------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"{runner_name(self.runner)} for {self.endpoint.model_id}"

    def __repr__(self) -> str:
        return f"<ManagedServer {self.runner} {self.endpoint.model_id} pid={self.pid} {self.endpoint.api_base}>"

    # -- state ---------------------------------------------------------------------------------------
    def returncode(self) -> int | None:
        """The server's exit status once it has ended (-1 when it is gone and its status unknown), else None."""
        if self.process is not None:  # our watchdog: it ends right after the server, the same way
            return self.process.poll()
        if process_alive(self.pid, self._record.pid_create_time):
            return None
        for line in reversed(logs.tail(self.log_path, 40)):  # the status line its watchdog wrote
            match = _STATUS.search(line)
            if match and int(match.group(1)) == self.pid:
                return int(match.group(2))
        return -1

    def healthy(self, timeout: float = TIMEOUTS.health_request) -> bool:
        """The process runs and GET /v1/models with the key answers 200."""
        if self._stopped or self.returncode() is not None:
            return False
        return models_status(self.host, self.port, self.endpoint.api_key, timeout) == 200

    def problem(self) -> ServerError | None:
        """None while the server is healthy; otherwise the error that explains what happened to it."""
        if self._stopped:
            return ServerError(f"The {self.name} ({self.endpoint.api_base}) was stopped by this program.",
                               kind="stopped", log_path=self.log_path)
        code = self.returncode()
        if code == -1 and self.process is None:
            code = self._exit_within(1.0)
        if code is None and models_status(self.host, self.port, self.endpoint.api_key, 5.0) != 200:
            code = self._exit_within(2.0)  # a server killed a moment ago may not be reaped yet
            if code is None and answers_http(self.host, self.port):
                return None  # busy with another user's reply: requests wait for their turn
            if code is None:
                return ServerError(self._message("is running but does not answer GET /v1/models.", logs.tail(self.log_path)),
                                   kind="not_answering", log_path=self.log_path)
        if code is None:
            return None
        lines = logs.tail(self.log_path)
        kind, advice = diagnose(code, lines, model_path=self.model_path, port=self.port, log_path=self.log_path)
        if kind == "crashed" and signal_name(code):
            gone = code == -1 and self.process is None
            advice = "It is no longer running." if gone else f"It was killed by {signal_name(code)}."
        return ServerError(self._message(f"stopped while in use. {advice}", lines), kind=kind,
                           log_path=self.log_path, returncode=code, log_tail=lines)

    def _exit_within(self, seconds: float) -> int | None:
        """The exit status, waiting up to `seconds` for it to be known (reaped, or written by the watchdog)."""
        deadline = time.monotonic() + seconds
        unknown = (None, -1) if self.process is None else (None,)
        while (code := self.returncode()) in unknown and time.monotonic() < deadline:
            time.sleep(0.05)
        return code

    def check(self) -> None:
        """Raise ServerError (an OiLocalError naming the server and its log) unless the server is healthy."""
        error = self.problem()
        if error is not None:
            raise error

    @contextlib.contextmanager
    def guard(self) -> Iterator[ManagedServer]:
        """Wrap requests to the server: an exception raised inside (a dropped connection, a broken stream)
        becomes a ServerError naming the server and its log when the server is what failed; other errors
        pass through unchanged."""
        try:
            yield self
        except OiLocalError:
            raise
        except Exception as error:
            problem = self.problem()
            if problem is None:
                raise
            raise problem from error

    def _message(self, what: str, lines: Sequence[str]) -> str:
        return f"The {self.name} (pid {self.pid}, {self.endpoint.api_base}) {what} Its log: {self.log_path}." + tail_message(lines)

    # -- recovery ------------------------------------------------------------------------------------
    def recover(self, notify: Callable[[str], None] | None = None) -> Endpoint | None:
        """After a request failed: None when the server is fine (the failure was something else). Otherwise
        say what happened (`notify`), start it again once with the same settings (its port and key, where
        the port is free) and return the new endpoint; raises OiLocalError when that fails too."""
        problem = None if self._stopped else self.problem()
        if problem is None or problem.returncode is None:
            return None  # fine, or running but hung: only a server that has ended is started again
        say = notify or log.warning
        if self._adopt_restarted():
            say(f"{problem}\nAnother run has started it again; continuing with that one.")
            return self.endpoint
        say(f"{problem}\nStarting it again with the same settings, then sending the question again.")
        old = self._state.record(self._record.id)
        others = [u for u in live_users(old) if u.token != self._token] if old is not None else []
        forget_at_exit(self)
        log_trimmer.forget(self.log_path)
        options = replace(self._options, port=self.port, api_key=self.endpoint.api_key, reuse=True)
        try:
            from oi_local.serving import launch

            fresh = launch.start(self._spec, options, self._paths, token=self._token, others=others)
        except (OiLocalError, OSError) as error:  # e.g. the model file is gone now
            self._stopped = True
            raise OiLocalError(f"{problem}\nStarting it again failed: {error}") from error
        self._become(fresh)
        return self.endpoint

    def recovery_hook(self, notify: Callable[[str], None] | None = None) -> Callable[[BaseException], Endpoint | None]:
        """For `llm.on_endpoint_failure`: the agent calls it when a request fails."""
        return lambda error: self.recover(notify)

    def _adopt_restarted(self) -> bool:
        """A shared server restarted by another of its users carries this handle over: use that one."""
        for record in self._state.live_records():
            if record.pid != self.pid and any(u.token == self._token for u in record.users) and \
                    models_status(record.key.host, record.port, record.api_key) == 200:
                forget_at_exit(self)
                self._become(ManagedServer(record, spec=self._spec, options=self._options, paths=self._paths,
                                           token=self._token, reused=True))
                return True
        return False

    def _become(self, other: ManagedServer) -> None:
        forget_at_exit(other)
        self.__dict__.update(other.__dict__)
        stop_at_exit(self, self.stop)

    # -- stopping ------------------------------------------------------------------------------------
    def stop(self, grace: float = STOP_GRACE_S) -> bool:
        """End this handle. The last user stops the whole process tree (SIGTERM, then SIGKILL after `grace`);
        while other programs still use the server it keeps running for them. Within one program, the handle
        that started the server ends it (as before sharing: its other handles only joined it). True when this
        call stopped the server, False when it runs on for others (or was stopped before)."""
        if self._stopped:
            return False
        self._stopped = True
        forget_at_exit(self)
        log_trimmer.forget(self.log_path)
        left = None
        with contextlib.suppress(OSError):
            left = self._state.release(self._token)
        if left is not None and left.users:
            elsewhere = [u for u in left.users if u.pid != os.getpid()]
            if elsewhere or self.reused:
                # another program still uses it (or, in this one, the handle that started it decides)
                log.info("%s stays up for %d other user(s)", self.name, len(left.users))
                return False
            with contextlib.suppress(OSError):
                self._state.remove_id(left.id)  # only this program's own other handles remain: it ends here
        elif left is None and self.process is None:
            return False  # joined, and its record is gone: its watchdog stops it when its users are gone
        stop_tree(self._record, grace, self.process)
        return True

    def __enter__(self) -> ManagedServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def stop_tree(record: ServerRecord, grace: float, process=None) -> None:
    """The watchdog and the server, each with its descendants."""
    if process is not None:
        stop_process_tree(process.pid, grace, process)
    elif record.watchdog_pid and process_alive(record.watchdog_pid, record.watchdog_create_time):
        stop_process_tree(record.watchdog_pid, grace)
    if server_alive(record):
        stop_process_tree(record.pid, grace)


# ---------------------------------------------------------------------------------------------- starting

def start_server(spec: ServerSpec, paths: AppPaths, options: ServerOptions | None = None) -> ManagedServer:
    """Start (or reuse) a server and return it once GET /v1/models answers 200 with its key.

    `spec.preflight()` (a check of the model file) runs right after the process is spawned, while it
    imports, so it costs no start time; when it raises, the server is stopped and the error propagates.
    Raises ServerError with a diagnosis when the server exits or times out, FileWriteError when its log or
    record cannot be written (a full disk). See oi_local.serving.launch.
    """
    from oi_local.serving import launch

    return launch.start(spec, options or ServerOptions(), paths.ensure(), token=secrets.token_hex(8), others=())
