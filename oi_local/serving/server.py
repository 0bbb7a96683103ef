"""ManagedServer: an OpenAI-compatible model server this program started (or found running), and its lifetime.

A runner (oi_local.serving.runners.*) knows which command serves a model; everything else lives here and is shared:
a free port on 127.0.0.1, a fresh API key, the process in its own session with its output in a rotated log,
waiting until GET /v1/models answers 200 with the key, explaining an early exit, reuse of a matching server
recorded in the state file, and stopping the whole process tree at exit, on Ctrl-C, on SIGTERM and on errors.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from oi_local.endpoint import Endpoint
from oi_local.env import TIMEOUTS
from oi_local.errors import OiLocalError
from oi_local.machine.paths import AppPaths
from oi_local.models.fit import Fit
from oi_local.serving.logs import LogTrimmer, log_path_for, rotate, tail
from oi_local.serving.ports import LOOPBACK, free_port, is_loopback, port_is_free
from oi_local.serving.state import ServerKey, ServerRecord, ServerState, process_create_time

log = logging.getLogger(__name__)

STOP_GRACE_S = TIMEOUTS.stop_grace
POLL_INTERVAL_S = 0.05
REBUILD_HINT = (
    'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --force-reinstall --no-cache-dir --no-deps llama-cpp-python'
)
RUNNER_NAMES = {"llamacpp": "llama.cpp server", "llamafile": "llamafile server"}

CommandBuilder = Callable[[int, str], Sequence[str]]  # (port, api_key) -> argv


class ServerError(OiLocalError):
    """A server did not start, or stopped while in use. `kind` names the known cause ("sigill", "oom",
    "bad_model", "port_taken", "shared_library", "binfmt", "timeout", "crashed", "not_answering")."""

    def __init__(self, message: str, *, kind: str = "crashed", log_path: Path | None = None,
                 returncode: int | None = None, log_tail: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.kind = kind
        self.log_path = log_path
        self.returncode = returncode
        self.log_tail = list(log_tail)


def ready_timeout(model_bytes: int) -> float:
    """Seconds to wait for a model to load: a minute, plus half a minute per GiB of weights, at most 15 min."""
    return min(900.0, 60.0 + 30.0 * model_bytes / 2**30)


def new_api_key() -> str:
    return "oi-" + secrets.token_urlsafe(24)


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return LOOPBACK
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def models_status(host: str, port: int, api_key: str | None, timeout: float = TIMEOUTS.health_request) -> int | None:
    """HTTP status of GET /v1/models with the key, or None when nothing answers."""
    import http.client

    conn = http.client.HTTPConnection(_url_host(host).strip("[]"), port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        conn.request("GET", "/v1/models", headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------- diagnosis

def _signal_name(returncode: int | None) -> str | None:
    if returncode is None or returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def diagnose(returncode: int | None, lines: Sequence[str], *, model_path: Path | None = None,
             port: int | None = None) -> tuple[str, str]:
    """(kind, what to do) for a server that exited, from its exit status and the end of its log."""
    text = "\n".join(lines).lower()
    signame = _signal_name(returncode)
    if signame == "SIGILL" or "illegal instruction" in text or returncode == 132:
        return "sigill", (
            "It died with SIGILL (an illegal CPU instruction): this llama.cpp build uses CPU instructions this "
            f"machine does not allow. Rebuild it for a generic CPU: {REBUILD_HINT}"
        )
    if "run-detectors" in text and "unable to find an interpreter" in text:
        return "binfmt", (
            "The system's binfmt handler (run-detectors) intercepted the executable. Run it through `sh`, or "
            "register the APE loader with binfmt_misc."
        )
    if ("error while loading shared libraries" in text or "cannot open shared object file" in text
            or "library not loaded" in text or ("oserror" in text and ".so" in text)):
        return "shared_library", (
            "A shared library it needs is missing (see the log lines below). Install the missing library or "
            f"reinstall llama-cpp-python: {REBUILD_HINT}"
        )
    if any(s in text for s in ("address already in use", "error while attempting to bind", "only one usage of each socket")):
        return "port_taken", f"Port {port} was taken by another program before the server could listen on it."
    if any(s in text for s in ("out of memory", "failed to allocate", "bad_alloc", "memoryerror",
                               "cannot allocate memory", "unable to allocate")) or (
            signame == "SIGKILL" and "killed" in text):
        return "oom", (
            "It ran out of memory. Choose a smaller model or quantization, a smaller context window "
            "(-c 2048), or fewer GPU layers (-ngl 0), and close other programs."
        )
    if any(s in text for s in ("model path does not exist", "no such file", "failed to load model",
                               "invalid magic", "not a gguf", "gguf_init", "failed to read", "unknown model architecture")):
        where = f" ({model_path})" if model_path else ""
        return "bad_model", (
            f"It could not load the model file{where}: it is missing, not a GGUF model, truncated, or of an "
            "architecture this llama.cpp build does not know. Download it again (oi-local models download ID) "
            "or update llama-cpp-python."
        )
    if "no module named" in text and "llama_cpp" in text:
        return "missing_package", "llama-cpp-python is not installed in this Python: pip install 'llama-cpp-python[server]'."
    if signame:
        return "crashed", f"It was stopped by {signame}."
    return "crashed", f"It exited with status {returncode}."


# ---------------------------------------------------------------------------------------------- stopping

def stop_process_tree(pid: int, grace: float = STOP_GRACE_S, popen: subprocess.Popen | None = None) -> None:
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


_owned: dict[int, ManagedServer] = {}
_trimmer = LogTrimmer()
_owned_lock = threading.Lock()
_hooks_pid: int | None = None
_previous_handlers: dict[int, object] = {}


def stop_all_owned() -> None:
    """Stop every server this process started (not those it reused). Safe to call more than once."""
    if _hooks_pid != os.getpid():  # a forked child must not stop its parent's servers
        return
    with _owned_lock:
        servers = list(_owned.values())
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


def _on_signal(signum: int, frame) -> None:
    stop_all_owned()
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    else:  # the default action (terminate): restore it and deliver the signal again, so the exit status is right
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _install_exit_hooks() -> None:
    """atexit always; SIGTERM/SIGHUP handlers only from the main thread, chained to the previous handlers.

    Ctrl-C needs no handler: Python's default raises KeyboardInterrupt, which unwinds into the atexit hook
    (and a start interrupted while loading stops its server itself).
    """
    global _hooks_pid
    if _hooks_pid == os.getpid():
        return
    if _hooks_pid is not None:  # a forked child: the servers in the table are its parent's, not its own
        with _owned_lock:
            _owned.clear()
    _hooks_pid = os.getpid()
    _previous_handlers.clear()
    atexit.register(stop_all_owned)
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


# ---------------------------------------------------------------------------------------------- ManagedServer

@dataclass
class _Loading:
    """Spinner with elapsed time, shown only when stderr is a terminal."""

    label: str
    enabled: bool

    def __post_init__(self) -> None:
        self._status = None
        self._started = time.monotonic()
        if self.enabled:
            from rich.console import Console

            self._status = Console(stderr=True).status(self._text())
            self._status.start()

    def _text(self) -> str:
        return f"{self.label} [dim]{time.monotonic() - self._started:.0f}s[/dim]"

    def tick(self) -> None:
        if self._status is not None:
            self._status.update(self._text())

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


class ManagedServer:
    """A running OpenAI-compatible server: `.endpoint` to talk to it, `.stop()` to end it.

    `reused` is True when this process found a matching server started by another run: then `stop()` only
    forgets it, and its owner stops it. Use as a context manager, or rely on the exit hooks.
    """

    def __init__(self, *, endpoint: Endpoint, runner: str, host: str, port: int, pid: int,
                 process: subprocess.Popen | None, log_path: Path, command: Sequence[str],
                 model_path: Path, state: ServerState | None, reused: bool) -> None:
        self.endpoint = endpoint
        self.runner = runner
        self.host = host
        self.port = port
        self.pid = pid
        self.process = process
        self.log_path = log_path
        self.command = list(command)
        self.model_path = model_path
        self.reused = reused
        self._state = state
        self._stopped = False

    # -- description ---------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"{RUNNER_NAMES.get(self.runner, self.runner)} for {self.endpoint.model_id}"

    def __repr__(self) -> str:
        return f"<ManagedServer {self.runner} {self.endpoint.model_id} pid={self.pid} {self.endpoint.api_base}>"

    # -- state ---------------------------------------------------------------------------------------
    def returncode(self) -> int | None:
        """The exit status when the process has ended (for a reused server: -1 once it is gone), else None."""
        if self.process is not None:
            return self.process.poll()
        import psutil

        try:
            proc = psutil.Process(self.pid)
            return -1 if proc.status() == psutil.STATUS_ZOMBIE else None
        except psutil.Error:
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
        if code is None and models_status(self.host, self.port, self.endpoint.api_key, 5.0) != 200:
            code = self._exit_within(2.0)  # a server killed a moment ago may not be reaped yet
            if code is None:
                return ServerError(self._message("is running but does not answer GET /v1/models.", tail(self.log_path)),
                                   kind="not_answering", log_path=self.log_path)
        if code is not None:
            lines = tail(self.log_path)
            kind, advice = diagnose(code, lines, model_path=self.model_path, port=self.port)
            if kind == "crashed" and _signal_name(code):
                advice = f"It was killed by {_signal_name(code)}."
            return ServerError(self._message(f"stopped while in use. {advice}", lines), kind=kind,
                               log_path=self.log_path, returncode=code, log_tail=lines)
        return None

    def _exit_within(self, seconds: float) -> int | None:
        deadline = time.monotonic() + seconds
        while (code := self.returncode()) is None and time.monotonic() < deadline:
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
        message = f"The {self.name} (pid {self.pid}, {self.endpoint.api_base}) {what} Its log: {self.log_path}."
        if lines:
            message += " Last lines:\n  " + "\n  ".join(lines[-8:])
        return message

    # -- stopping ------------------------------------------------------------------------------------
    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """Stop the whole process tree (SIGTERM, then SIGKILL after `grace`). A reused server is left to its owner."""
        if self._stopped:
            return
        self._stopped = True
        with _owned_lock:
            _owned.pop(self.pid, None)
        if self.reused:
            return
        if self._state is not None:
            with contextlib.suppress(OSError):
                self._state.remove(self.pid)
        stop_process_tree(self.pid, grace, self.process)
        _trimmer.forget(self.log_path)

    def __enter__(self) -> ManagedServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------- starting

def _reuse(state: ServerState, key: ServerKey, *, runner: str, port: int | None, api_key: str | None,
           fit: Fit, model_path: Path) -> ManagedServer | None:
    def stop_orphan(record: ServerRecord) -> None:
        log.warning("stopping orphaned %s server pid %s (its owner pid %s is gone)", record.key.runner, record.pid,
                    record.owner_pid)
        stop_process_tree(record.pid, STOP_GRACE_S)

    for record in state.find(key, on_orphan=stop_orphan):
        if port is not None and record.port != port:
            continue
        if api_key is not None and record.api_key != api_key:
            continue
        if models_status(key.host, record.port, record.api_key) != 200:
            continue
        log.info("reusing %s server pid %s on port %s", runner, record.pid, record.port)
        endpoint = _endpoint(runner, key.host, record.port, key.model_id, record.api_key, fit, record.pid,
                             Path(record.log_path))
        return ManagedServer(endpoint=endpoint, runner=runner, host=key.host, port=record.port, pid=record.pid,
                             process=None, log_path=Path(record.log_path), command=record.command,
                             model_path=model_path, state=state, reused=True)
    return None


def _endpoint(runner: str, host: str, port: int, model_id: str, api_key: str, fit: Fit, pid: int,
              log_path: Path) -> Endpoint:
    return Endpoint(
        api_base=f"http://{_url_host(host)}:{port}/v1",
        model_id=model_id,
        api_key=api_key,
        context_window=fit.n_ctx,
        max_tokens=fit.max_tokens,
        provider=runner,
        pid=pid,
        log_path=log_path,
    )


def start_server(
    *,
    runner: str,
    build_command: CommandBuilder,
    model_path: Path,
    model_id: str,
    fit: Fit,
    paths: AppPaths,
    host: str = LOOPBACK,
    port: int | None = None,
    api_key: str | None = None,
    reuse: bool = True,
    reuse_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    progress: bool | None = None,
    preflight: Callable[[], object] | None = None,
) -> ManagedServer:
    """Start (or reuse) a server and return it once GET /v1/models answers 200 with its key.

    `build_command(port, api_key)` gives the argv. `reuse_args` are what, besides the model and the fit,
    makes two servers different. `preflight()` (a check of the model file) runs right after the process is
    spawned, while it imports, so it costs no start time; when it raises, the server is stopped and the
    error propagates. Raises ServerError with a diagnosis when the server exits or times out.
    """
    paths.ensure()
    model_path = Path(model_path)
    if not is_loopback(host):
        log.warning("the server will listen on %s: anyone who can reach this machine can use the model", host)
    state = ServerState(paths.state)
    key = ServerKey.for_file(runner, model_path, model_id=model_id, n_ctx=fit.n_ctx,
                             n_gpu_layers=fit.n_gpu_layers, host=host, extra_args=tuple(reuse_args))
    if reuse:
        found = _reuse(state, key, runner=runner, port=port, api_key=api_key, fit=fit, model_path=model_path)
        if found is not None:
            return found
    if port is not None and not port_is_free(port, host):
        chosen = free_port(host)
        log.warning("port %s on %s is taken; using port %s instead", port, host, chosen)
        port_was_given = False
        port = chosen
    else:
        port_was_given = port is not None
    if timeout is None:
        timeout = ready_timeout(key.model_size)
    if progress is None:
        progress = sys.stderr.isatty()
    api_key = api_key or new_api_key()
    log_path = _unused_log_path(log_path_for(paths.logs, runner, model_id), state)
    attempts = 1 if port_was_given else 3
    for attempt in range(attempts):
        use_port = port if port is not None and attempt == 0 else free_port(host)
        try:
            return _launch(runner=runner, command=list(build_command(use_port, api_key)), model_path=model_path,
                           model_id=model_id, fit=fit, host=host, port=use_port, api_key=api_key,
                           log_path=log_path, env=env, timeout=timeout, progress=progress, state=state, key=key,
                           preflight=preflight)
        except ServerError as error:
            if error.kind != "port_taken" or attempt == attempts - 1:
                raise
            log.warning("port %s was taken while the server started; trying another", use_port)
    raise AssertionError("unreachable")


def _unused_log_path(base: Path, state: ServerState) -> Path:
    """`base`, unless a running server still writes to it (two servers of one model): then base-2, base-3..."""
    with _owned_lock:
        used = {str(s.log_path) for s in _owned.values()}
    used |= {r.log_path for r in state.live_records()}
    for n in range(1, 10):
        candidate = base if n == 1 else base.with_name(f"{base.stem}-{n}{base.suffix}")
        if str(candidate) not in used:
            return candidate
    return base


def _launch(*, runner: str, command: list[str], model_path: Path, model_id: str, fit: Fit, host: str, port: int,
            api_key: str, log_path: Path, env: dict[str, str] | None, timeout: float, progress: bool,
            state: ServerState, key: ServerKey, preflight: Callable[[], object] | None = None) -> ManagedServer:
    rotate(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as header:
        shown = [("<api-key>" if i > 0 and command[i - 1] in ("--api_key", "--api-key") else part)
                 for i, part in enumerate(command)]
        header.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} started by pid {os.getpid()}: {' '.join(shown)}\n".encode())
    _install_exit_hooks()
    kwargs: dict = {}
    if os.name == "posix":
        kwargs["start_new_session"] = True
    else:  # pragma: no cover - Windows
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
    try:
        # straight into the file (O_APPEND), not through a pipe: nothing here has to copy it, and the server
        # never blocks on this process
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_file,
                                       stderr=subprocess.STDOUT, env=env, **kwargs)
    except OSError as error:
        raise ServerError(
            f"Could not run the {RUNNER_NAMES.get(runner, runner)} ({command[0]}): {error}. Its log: {log_path}.",
            kind="exec_failed", log_path=log_path) from error
    _trimmer.watch(log_path)
    endpoint = _endpoint(runner, host, port, model_id, api_key, fit, process.pid, log_path)
    server = ManagedServer(endpoint=endpoint, runner=runner, host=host, port=port, pid=process.pid,
                           process=process, log_path=log_path, command=command, model_path=model_path,
                           state=state, reused=False)
    with _owned_lock:
        _owned[process.pid] = server
    spinner = _Loading(f"Loading {model_id} ({RUNNER_NAMES.get(runner, runner)}, port {port})", progress)
    try:
        if preflight is not None:
            preflight()
        deadline = time.monotonic() + timeout
        while True:
            code = process.poll()
            if code is not None:
                lines = tail(log_path)
                kind, advice = diagnose(code, lines, model_path=model_path, port=port)
                server.stop()
                raise ServerError(
                    f"The {RUNNER_NAMES.get(runner, runner)} for {model_id} exited while starting "
                    f"(status {code}). {advice} Its log: {log_path}."
                    + (" Last lines:\n  " + "\n  ".join(lines[-8:]) if lines else ""),
                    kind=kind, log_path=log_path, returncode=code, log_tail=lines)
            if models_status(host, port, api_key, timeout=TIMEOUTS.health_request) == 200:
                break
            if time.monotonic() > deadline:
                lines = tail(log_path)
                server.stop()
                raise ServerError(
                    f"The {RUNNER_NAMES.get(runner, runner)} for {model_id} did not answer within {timeout:.0f}s "
                    f"and was stopped. Its log: {log_path}."
                    + (" Last lines:\n  " + "\n  ".join(lines[-8:]) if lines else ""),
                    kind="timeout", log_path=log_path, log_tail=lines)
            spinner.tick()
            time.sleep(POLL_INTERVAL_S)
    except BaseException:
        server.stop()  # Ctrl-C or an error while loading: leave nothing behind
        raise
    finally:
        spinner.close()
    owner_time = process_create_time(os.getpid()) or 0.0
    pid_time = process_create_time(process.pid)
    if pid_time is not None:
        with contextlib.suppress(OSError):
            state.add(ServerRecord(key=key, pid=process.pid, pid_create_time=pid_time, port=port, api_key=api_key,
                                   owner_pid=os.getpid(), owner_create_time=owner_time, log_path=str(log_path),
                                   command=tuple(command)))
    return server
