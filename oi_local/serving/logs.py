"""Server log files: one per server start, rotated so that the logs folder stays bounded."""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from pathlib import Path

KEEP_OLD = 4  # older logs kept next to the current one: name.1.log ... name.4.log
MAX_BYTES = 8 * 1024 * 1024  # one log file never grows past this; the excess rolls into name.1.log


def log_path_for(logs_dir: Path, runner: str, model_id: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id).strip("._") or "model"
    return Path(logs_dir) / f"{runner}-{safe}.log"


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
        with open(path, "rb") as src, open(path.with_name(f"{path.stem}.1{path.suffix}"), "wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)
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
