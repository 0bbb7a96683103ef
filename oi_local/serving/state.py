"""The record of servers this program started, so that another run can reuse one instead of loading twice.

One JSON file (`servers.json` in the state folder) holds a list of records. Every change happens under an
exclusive lock and is written atomically, so two programs starting at once never corrupt it. Records whose
server or owner is gone are dropped whenever the file is read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
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


@dataclass(frozen=True)
class ServerRecord:
    key: ServerKey
    pid: int
    pid_create_time: float  # psutil's create_time, so a recycled pid is not mistaken for our server
    port: int
    api_key: str
    owner_pid: int
    owner_create_time: float
    log_path: str
    command: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        data = asdict(self)
        data["key"]["extra_args"] = list(self.key.extra_args)
        data["command"] = list(self.command)
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
        )


def process_create_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


def _alive(pid: int, create_time: float) -> bool:
    import psutil

    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - create_time) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, OSError):
        return False


def record_is_live(record: ServerRecord) -> bool:
    """The server process and the program that owns it are both still running."""
    return _alive(record.pid, record.pid_create_time) and _alive(record.owner_pid, record.owner_create_time)


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

        A server whose owner died without stopping it (SIGKILL, a power cut of the terminal) is an orphan:
        its record is dropped and `on_orphan(record)` is called so that the caller can stop it.
        """
        with self._locked():
            records = self._read()
            live = [r for r in records if record_is_live(r)]
            if len(live) != len(records):
                self._write(live)
        if on_orphan is not None:
            for record in records:
                if record not in live and _alive(record.pid, record.pid_create_time):
                    on_orphan(record)
        return live

    def find(self, key: ServerKey, on_orphan: Callable[[ServerRecord], None] | None = None) -> list[ServerRecord]:
        return [r for r in self.live_records(on_orphan) if r.key == key]

    def add(self, record: ServerRecord) -> None:
        with self._locked():
            records = [r for r in self._read() if record_is_live(r) and r.pid != record.pid]
            records.append(record)
            self._write(records)

    def remove(self, pid: int) -> None:
        with self._locked():
            records = self._read()
            kept = [r for r in records if r.pid != pid and record_is_live(r)]
            if len(kept) != len(records):
                self._write(kept)
