"""The record of servers this program started, so that another run can reuse one instead of loading twice.

One JSON file (`servers.json` in the state folder, 0600) holds a list of records. Every change happens under
an exclusive lock and is written atomically, so two programs starting at once never corrupt it (and a reader
without the lock, such as the watchdog, always sees a whole file). A record is written before its server
starts and names the programs that use the server (`users`); a server is live while it runs and one of its
users does. Records that are not live are dropped whenever the file is read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

STATE_FILE = "servers.json"


@dataclass(frozen=True)
class ServerKey:
    """What makes two servers interchangeable: the same model file (unchanged) served the same way."""

    runner: str
    model_path: str
    model_mtime_ns: int
    model_size: int
    model_id: str
    n_ctx: int
    n_gpu_layers: int
    host: str
    extra_args: tuple[str, ...] = ()

    @classmethod
    def for_file(cls, runner: str, model_path: Path, *, model_id: str, n_ctx: int, n_gpu_layers: int,
                 host: str, extra_args: tuple[str, ...] = ()) -> ServerKey:
        resolved = Path(model_path).resolve()
        stat = resolved.stat()
        return cls(runner, str(resolved), stat.st_mtime_ns, stat.st_size, model_id, n_ctx, n_gpu_layers,
                   host, tuple(extra_args))

    def digest(self) -> str:
        """A short name for this key (the lock around starting or reusing such a server)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class User:
    """One handle on a server: a process (pid and start time, so a recycled pid is not mistaken for it) and a
    token, since one process may hold several handles."""

    pid: int
    create_time: float
    token: str = ""


@dataclass(frozen=True)
class ServerRecord:
    key: ServerKey
    pid: int  # the server; 0 while its record is written before it starts
    pid_create_time: float  # psutil's create_time, so a recycled pid is not mistaken for our server
    port: int
    api_key: str
    owner_pid: int  # the program that started it
    owner_create_time: float
    log_path: str
    command: tuple[str, ...] = field(default_factory=tuple)
    users: tuple[User, ...] = ()  # empty in records of older versions: the owner is the one user
    watchdog_pid: int = 0
    watchdog_create_time: float = 0.0
    id: str = ""

    def all_users(self) -> tuple[User, ...]:
        return self.users or (User(self.owner_pid, self.owner_create_time),)

    def to_json(self) -> dict:
        data = asdict(self)
        data["key"]["extra_args"] = list(self.key.extra_args)
        data["command"] = list(self.command)
        data["users"] = [asdict(u) for u in self.users]
        return data

    @classmethod
    def from_json(cls, data: dict) -> ServerRecord:
        key = dict(data["key"])
        key["extra_args"] = tuple(key.get("extra_args", ()))
        return cls(
            key=ServerKey(**key),
            pid=int(data["pid"]),
            pid_create_time=float(data["pid_create_time"]),
            port=int(data["port"]),
            api_key=str(data["api_key"]),
            owner_pid=int(data["owner_pid"]),
            owner_create_time=float(data["owner_create_time"]),
            log_path=str(data["log_path"]),
            command=tuple(data.get("command", ())),
            users=tuple(User(int(u["pid"]), float(u["create_time"]), str(u.get("token", "")))
                        for u in data.get("users", ())),
            watchdog_pid=int(data.get("watchdog_pid", 0)),
            watchdog_create_time=float(data.get("watchdog_create_time", 0.0)),
            id=str(data.get("id", "")),
        )


def process_create_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


def process_alive(pid: int, create_time: float) -> bool:
    """The process runs (not a zombie) and is the one that started at `create_time`."""
    import psutil

    if pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - create_time) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, OSError):
        return False


def live_users(record: ServerRecord) -> list[User]:
    return [u for u in record.all_users() if process_alive(u.pid, u.create_time)]


def record_is_live(record: ServerRecord) -> bool:
    """One of its users still runs, and so does the server (or, before the server is spawned, nothing yet
    says otherwise)."""
    if not live_users(record):
        return False
    if record.pid == 0:
        return record.watchdog_pid == 0 or process_alive(record.watchdog_pid, record.watchdog_create_time)
    return process_alive(record.pid, record.pid_create_time)


def server_alive(record: ServerRecord) -> bool:
    return record.pid > 0 and process_alive(record.pid, record.pid_create_time)


class ServerState:
    """The state file of one app home."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / STATE_FILE
        self._lock_path = Path(state_dir) / (STATE_FILE + ".lock")

    def _locked(self):
        from oi_local.files import file_lock

        return file_lock(self._lock_path)

    def _read(self) -> list[ServerRecord]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []  # no file yet, or a damaged one: it only caches running servers, so start afresh
        records = []
        for item in raw if isinstance(raw, list) else []:
            try:
                records.append(ServerRecord.from_json(item))
            except (KeyError, TypeError, ValueError):
                continue
        return records

    def _write(self, records: list[ServerRecord]) -> None:
        from oi_local.files import write_json_atomic

        write_json_atomic(self.path, [r.to_json() for r in records])

    def live_records(self, on_orphan: Callable[[ServerRecord], None] | None = None) -> list[ServerRecord]:
        """Every recorded server still running; stale records are removed from the file.

        A server whose users all died without stopping it (the watchdog itself killed, a record of an older
        version) is an orphan: its record is dropped and `on_orphan(record)` is called so that the caller can
        stop it.
        """
        with self._locked():
            records = self._read()
            live = [r for r in records if record_is_live(r)]
            if len(live) != len(records):
                self._write(live)
        if on_orphan is not None:
            for record in records:
                if record not in live and server_alive(record):
                    on_orphan(record)
        return live

    def find(self, key: ServerKey, on_orphan: Callable[[ServerRecord], None] | None = None) -> list[ServerRecord]:
        return [r for r in self.live_records(on_orphan) if r.key == key]

    def record(self, record_id: str | None) -> ServerRecord | None:
        """The record with this id as the file has it now (read without the lock: writes are atomic)."""
        return next((r for r in self._read() if record_id and r.id == record_id), None)

    def add(self, record: ServerRecord) -> None:
        with self._locked():
            # (records written before their server starts all have pid 0: that says nothing about being the same)
            records = [r for r in self._read() if record_is_live(r) and not (record.pid and r.pid == record.pid)
                       and (not record.id or r.id != record.id)]
            records.append(record)
            self._write(records)

    def update(self, record: ServerRecord) -> None:
        """Write `record` over the one with its id (added if it is gone)."""
        with self._locked():
            records = [r for r in self._read() if r.id != record.id]
            records.append(record)
            self._write(records)

    def join(self, record_id: str, user: User) -> ServerRecord | None:
        """Add `user` to a live record; None when that record is gone (or no longer live)."""
        with self._locked():
            records = self._read()
            found = next((r for r in records if r.id == record_id), None)
            if found is None or not record_is_live(found):
                return None
            if any(u.token == user.token for u in found.users):
                return found
            joined = replace(found, users=(*live_users(found), user))
            self._write([joined if r is found else r for r in records])
            return joined

    def release(self, token: str) -> ServerRecord | None:
        """Take the handle `token` off its record. Returns the record as it was, with the users still alive
        left in `.users`; when none is left the record is removed and the server is the caller's to stop.
        None when no record holds the token."""
        with self._locked():
            records = self._read()
            found = next((r for r in records if any(u.token == token for u in r.users)), None)
            if found is None:
                return None
            left = replace(found, users=tuple(u for u in live_users(found) if u.token != token))
            kept = [r for r in records if r is not found]
            if left.users:
                kept.append(left)
            self._write(kept)
            return left

    def retire(self, record_id: str | None) -> bool:
        """For the watchdog: remove the record unless one of its users still runs. True when it is gone."""
        with self._locked():
            records = self._read()
            found = next((r for r in records if record_id and r.id == record_id), None)
            if found is None:
                return True
            if live_users(found):
                return False
            self._write([r for r in records if r is not found])
            return True

    def remove_id(self, record_id: str) -> None:
        with self._locked():
            records = self._read()
            kept = [r for r in records if r.id != record_id]
            if len(kept) != len(records):
                self._write(kept)
