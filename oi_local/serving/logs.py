"""Server log files: one file per server (a name of its own, so no start ever renames a live log), private
to the user (0600), with old ones pruned so that the logs folder stays bounded."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import threading
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import BinaryIO

KEEP_OLD = 4  # older logs kept next to the current one: name.1.log ... name.4.log
KEEP_PER_MODEL = 8  # logs of servers that ended, kept per runner and model (the newest)
MAX_BYTES = 8 * 1024 * 1024  # one log file never grows past this; the excess rolls into name.1.log
PRIVATE_FILE = 0o600


def _base(runner: str, model_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id).strip("._") or "model"
    return f"{runner}-{safe}"


def new_log_path(logs_dir: Path, runner: str, model_id: str) -> Path:
    """A name no other server has: runner-model-YYYYmmdd-HHMMSS-xxxx.log."""
    return Path(logs_dir) / f"{_base(runner, model_id)}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}.log"


def prune(logs_dir: Path, runner: str, model_id: str, *, live: Collection[str], keep: int = KEEP_PER_MODEL) -> None:
    """Delete the oldest logs of this runner and model beyond `keep`, never one in `live` (a running server's)."""
    pattern = re.compile(re.escape(_base(runner, model_id)) + r"-\d{8}-\d{6}-[0-9a-f]{4}\.log$")
    try:
        found = sorted((p for p in Path(logs_dir).iterdir() if pattern.match(p.name)), key=lambda p: p.name)
    except OSError:
        return
    for path in [p for p in found if str(p) not in live][:-keep or None]:
        for old in [path, *path.parent.glob(f"{path.stem}.[0-9]*{path.suffix}")]:
            with contextlib.suppress(OSError):
                old.unlink()


@contextlib.contextmanager
def open_private(path: Path) -> Iterator[BinaryIO]:
    """The log opened for appending (O_APPEND, as servers write), created 0600 in a 0700 folder if missing."""
    from oi_local import files

    path = Path(path)
    files.private_dir(path.parent)
    with files.open_private(path, "ab") as file:
        with contextlib.suppress(OSError):
            files.tighten(path, PRIVATE_FILE)
        yield file


def begin(path: Path, header: str) -> None:
    """Start a server's log: an older log of that name (a failed attempt) moves to name.1.log, then the header
    line. Raises FileWriteError (one paragraph: what, why, what to do) when the disk is full or the folder
    not writable; a log it just created and could not write is removed."""
    from oi_local.files import FileWriteError, what_to_do

    path = Path(path)
    rotate(path)
    existed = path.exists()
    try:
        with open_private(path) as log:
            log.write(header.encode("utf-8", errors="replace"))  # a full disk shows here or at the close
    except OSError as error:
        if not existed:
            with contextlib.suppress(OSError):
                path.unlink()
        message = f"Could not write {path}: {error.strerror or error}. {what_to_do(error)}; no server was started."
        raise FileWriteError(message, path=path, os_error=error) from error


def rotate(path: Path, keep: int = KEEP_OLD) -> None:
    """name.log -> name.1.log -> ... ; the oldest beyond `keep` is deleted."""
    rotate_numbered(path, keep)
    if path.exists():
        with contextlib.suppress(OSError):
            path.replace(path.with_name(f"{path.stem}.1{path.suffix}"))


def tail(path: Path, lines: int = 15, max_bytes: int = 16384) -> list[str]:
    """The last lines of a log (empty when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace")
    return [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]


def trim(path: Path, max_bytes: int = MAX_BYTES) -> bool:
    """When a log a running server appends to has grown past max_bytes, move its content to name.1.log and
    empty it in place. The server opened it with O_APPEND, so it simply goes on writing at the new end."""
    try:
        if path.stat().st_size <= max_bytes:
            return False
        rotate_numbered(path)
        first = path.with_name(f"{path.stem}.1{path.suffix}")
        try:
            with open(path, "rb") as src, open_private(first) as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
        except OSError:
            first.unlink(missing_ok=True)  # a full disk: keep the log as it is rather than half a copy
            raise
        os.truncate(path, 0)
        return True
    except OSError:
        return False


def rotate_numbered(path: Path, keep: int = KEEP_OLD) -> None:
    """Shift name.1.log ... up by one, leaving name.1.log free (name.log itself is not touched)."""
    def numbered(n: int) -> Path:
        return path.with_name(f"{path.stem}.{n}{path.suffix}")

    with contextlib.suppress(OSError):
        numbered(keep).unlink(missing_ok=True)
    for n in range(keep - 1, 0, -1):
        if numbered(n).exists():
            with contextlib.suppress(OSError):
                numbered(n).replace(numbered(n + 1))


class LogTrimmer:
    """One daemon thread that keeps the logs of running servers under MAX_BYTES (checked every `every` s).

    Servers write straight into their log file (no pipe through this process: copying thousands of load
    messages would slow the start), so the bound is enforced from outside.
    """

    def __init__(self, every: float = 15.0, max_bytes: int = MAX_BYTES) -> None:
        self.every = every
        self.max_bytes = max_bytes
        self._paths: set[Path] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, path: Path) -> None:
        with self._lock:
            self._paths.add(path)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="oi-local-log-trimmer", daemon=True)
                self._thread.start()

    def forget(self, path: Path) -> None:
        with self._lock:
            self._paths.discard(path)

    def _run(self) -> None:
        while True:
            time.sleep(self.every)
            with self._lock:
                paths = list(self._paths)
            for path in paths:
                trim(path, self.max_bytes)
