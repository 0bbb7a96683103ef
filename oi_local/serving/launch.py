"""Starting a server, or joining one that runs: the lock per ServerKey, reuse, the record written before the
server starts, the watchdog, the API key handed over off the command line, and the wait until it answers."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from oi_local.endpoint import is_loopback
from oi_local.env import TIMEOUTS
from oi_local.machine.paths import AppPaths
from oi_local.serving import logs
from oi_local.serving.diagnose import ServerError, diagnose, runner_name
from oi_local.serving.options import ServerOptions, ServerSpec
from oi_local.serving.ports import free_port, port_is_free
from oi_local.serving.process import stop_at_exit
from oi_local.serving.progress import Loading
from oi_local.serving.server import (
    STOP_GRACE_S,
    ManagedServer,
    answers_http,
    log_trimmer,
    models_status,
    stop_tree,
    tail_message,
)
from oi_local.serving.state import ServerKey, ServerRecord, ServerState, User, process_create_time

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.05


@dataclass(frozen=True)
class _Start:
    """One start (or reuse) in progress: what, how, where, and for whom."""

    spec: ServerSpec
    options: ServerOptions
    paths: AppPaths
    state: ServerState
    key: ServerKey
    progress: bool
    users: tuple[User, ...]  # this handle first, then users carried over from a server that died

    def handle(self, record: ServerRecord, *, process=None, reused: bool) -> ManagedServer:
        server = ManagedServer(record, spec=self.spec, options=self.options, paths=self.paths,
                               token=self.users[0].token, process=process, reused=reused)
        stop_at_exit(server, server.stop)
        return server


def ready_timeout(model_bytes: int) -> float:
    """Seconds to wait for a model to load: a minute, plus half a minute per GiB of weights, at most 15 min."""
    return min(900.0, 60.0 + 30.0 * model_bytes / 2**30)


def new_api_key() -> str:
    return "oi-" + secrets.token_urlsafe(24)


def start(spec: ServerSpec, options: ServerOptions, paths: AppPaths, *, token: str,
           others: Sequence[User]) -> ManagedServer:
    if not is_loopback(options.host):
        log.warning("the server will listen on %s: anyone who can reach this machine can use the model", options.host)
    state = ServerState(paths.state)
    key = ServerKey.for_file(spec.runner, spec.model_path, model_id=spec.model_id, n_ctx=spec.fit.n_ctx,
                             n_gpu_layers=spec.fit.n_gpu_layers, host=options.host, extra_args=tuple(spec.reuse_args))
    progress = sys.stderr.isatty() if options.progress is None else options.progress
    me = User(os.getpid(), process_create_time(os.getpid()) or 0.0, token)
    start = _Start(spec, options, paths, state, key, progress, (me, *others))
    if not options.reuse:
        return _start_new(start)
    with _start_lock(paths, key, spec.model_id, progress):
        return _reuse(start) or _start_new(start)


@contextlib.contextmanager
def _start_lock(paths: AppPaths, key: ServerKey, model_id: str, progress: bool) -> Iterator[None]:
    """One launcher at a time starts (or reuses) a server of this key; the others wait, then reuse it."""
    from oi_local.files import file_lock

    waiting: list[Loading] = []

    def on_wait() -> None:
        log.info("waiting for another run that is starting a server for %s", model_id)
        waiting.append(Loading(f"Waiting for another run that is starting {model_id}", progress))

    with file_lock(paths.state / f"start-{key.digest()}.lock", on_wait=on_wait):
        for spinner in waiting:
            spinner.close()
        yield


def _reuse(start: _Start) -> ManagedServer | None:
    def stop_orphan(record: ServerRecord) -> None:
        log.warning("stopping orphaned %s server pid %s (none of its users is running)", record.key.runner, record.pid)
        stop_tree(record, STOP_GRACE_S)

    options, key = start.options, start.key
    for record in start.state.find(key, on_orphan=stop_orphan):
        if options.port is not None and record.port != options.port:
            continue
        if options.api_key is not None and record.api_key != options.api_key:
            continue
        if not record.id or record.pid == 0:
            continue
        status = models_status(key.host, record.port, record.api_key)
        if status != 200 and not (status is None and answers_http(key.host, record.port)):
            continue  # not answering with its key (None and answering: busy with another user's reply)
        joined = start.state.join(record.id, start.users[0])
        if joined is None:
            continue
        log.info("reusing %s server pid %s on port %s", key.runner, joined.pid, joined.port)
        return start.handle(joined, reused=True)
    return None


def _start_new(start: _Start) -> ManagedServer:
    spec, options, paths = start.spec, start.options, start.paths
    port = options.port
    if port is not None and not port_is_free(port, options.host):
        chosen = free_port(options.host)
        log.warning("port %s on %s is taken; using port %s instead", port, options.host, chosen)
        port_was_given, port = False, chosen
    else:
        port_was_given = port is not None
    timeout = options.timeout if options.timeout is not None else ready_timeout(start.key.model_size)
    api_key = options.api_key or new_api_key()
    log_path = spec.log_path or logs.new_log_path(paths.logs, spec.runner, spec.model_id)
    live = {r.log_path for r in start.state.live_records()} | {str(log_path)}
    logs.prune(paths.logs, spec.runner, spec.model_id, live=live)
    attempts = 1 if port_was_given else 3
    for attempt in range(attempts):
        use_port = port if port is not None and attempt == 0 else free_port(options.host)
        try:
            return _launch(start, port=use_port, api_key=api_key, log_path=log_path, timeout=timeout)
        except ServerError as error:
            if error.kind != "port_taken" or attempt == attempts - 1:
                raise
            log.warning("port %s was taken while the server started; trying another", use_port)
    raise AssertionError("unreachable")


def _child_env(spec: ServerSpec, api_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in spec.env_remove}
    env.update(spec.env or {})
    if spec.key_env:
        env[spec.key_env] = api_key  # /proc/PID/environ is readable by its owner only
    return env


KEY_FILE_LIFETIME_S = 1800  # longer than any start may take (ready_timeout's most): older ones were left by a crash


def _write_key_file(paths: AppPaths, api_key: str) -> Path:
    """A 0600 file in a 0700 folder, read by the server at its start and removed once it answers."""
    folder = paths.state / "keys"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for old in folder.glob("*.key"):
        with contextlib.suppress(OSError):
            if time.time() - old.stat().st_mtime > KEY_FILE_LIFETIME_S:
                old.unlink()
    path = folder / f"{secrets.token_hex(8)}.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(api_key + "\n")
    return path


def _launch(start: _Start, *, port: int, api_key: str, log_path: Path, timeout: float) -> ManagedServer:
    spec, state = start.spec, start.state
    argv = list(spec.build_command(port))
    key_file = None
    if spec.key_file_flag:
        key_file = _write_key_file(start.paths, api_key)
        argv += [spec.key_file_flag, str(key_file)]
    try:
        logs.begin(log_path, f"# {time.strftime('%Y-%m-%d %H:%M:%S')} started by pid {os.getpid()}: {' '.join(argv)}\n")
        owner = start.users[0]
        record = ServerRecord(key=start.key, pid=0, pid_create_time=0.0, port=port, api_key=api_key,
                              owner_pid=owner.pid, owner_create_time=owner.create_time, log_path=str(log_path),
                              command=tuple(argv), users=start.users, id=secrets.token_hex(8))
        state.add(record)  # before the server starts: no run ever loses track of it
        early: BaseException | None = None
        try:
            pending = _spawn(argv, _child_env(spec, api_key), log_path, state, record)
            try:
                if spec.preflight is not None:
                    spec.preflight()  # while the watchdog boots and the server imports: it costs no start time
            except BaseException as error:  # the server is stopped once it is known, then this goes on up
                early = error
            process, pid = pending()
        except OSError as error:
            state.remove_id(record.id)
            if early is not None:
                raise early from None
            raise ServerError(f"Could not run the {runner_name(spec.runner)} ({argv[0]}): {error.strerror or error}. "
                              f"Its log: {log_path}.", kind="exec_failed", log_path=log_path) from error
        watched = process.pid != pid
        record = replace(record, pid=pid, pid_create_time=process_create_time(pid) or 0.0,
                         watchdog_pid=process.pid if watched else 0,
                         watchdog_create_time=(process_create_time(process.pid) or 0.0) if watched else 0.0)
        server = start.handle(record, process=process, reused=False)
        try:
            if early is not None:
                raise early
            state.update(record)
            log_trimmer.watch(log_path)
            _wait_ready(server, spec, timeout=timeout, progress=start.progress)
        except BaseException:
            server.stop()  # Ctrl-C or an error while loading: leave nothing behind
            raise
        return server
    finally:
        if key_file is not None:
            with contextlib.suppress(OSError):
                key_file.unlink()  # read at the server's start; the key lives on in the 0600 state file


def _spawn(argv: list[str], env: Mapping[str, str], log_path: Path, state: ServerState, record: ServerRecord):
    """Start the server; returns a callable giving (the process to watch, the server's pid): the watchdog and
    its child on POSIX, else the server itself."""
    if os.name == "posix":
        from oi_local.serving import watchdog

        return watchdog.begin(argv, log_path=log_path, env=dict(env), state_path=state.path, record_id=record.id).wait
    from oi_local.serving.process import spawn  # pragma: no cover - Windows

    with logs.open_private(log_path) as log_file:
        process = spawn(argv, stdout=log_file, env=env, parent_death_signal=None)
    return lambda: (process, process.pid)


def _wait_ready(server: ManagedServer, spec: ServerSpec, *, timeout: float, progress: bool) -> None:
    name = runner_name(spec.runner)
    spinner = Loading(f"Loading {spec.model_id} ({name}, port {server.port})", progress)
    try:
        deadline = time.monotonic() + timeout
        while True:
            code = server.returncode()
            if code is not None:
                lines = logs.tail(server.log_path)
                kind, advice = diagnose(code, lines, model_path=spec.model_path, port=server.port,
                                        log_path=server.log_path)
                raise ServerError(
                    f"The {name} for {spec.model_id} exited while starting (status {code}). {advice} "
                    f"Its log: {server.log_path}." + tail_message(lines),
                    kind=kind, log_path=server.log_path, returncode=code, log_tail=lines)
            if models_status(server.host, server.port, server.endpoint.api_key, timeout=TIMEOUTS.health_request) == 200:
                return
            if time.monotonic() > deadline:
                lines = logs.tail(server.log_path)
                raise ServerError(
                    f"The {name} for {spec.model_id} did not answer within {timeout:.0f}s and was stopped. "
                    f"Its log: {server.log_path}." + tail_message(lines),
                    kind="timeout", log_path=server.log_path, log_tail=lines)
            spinner.tick()
            time.sleep(POLL_INTERVAL_S)
    finally:
        spinner.close()
