"""Server log files: one per server start, rotated so that the logs folder stays bounded."""

from __future__ import annotations

import contextlib
import re
import threading
from pathlib import Path
from typing import IO

KEEP_OLD = 4  # older logs kept next to the current one: name.1.log ... name.4.log
MAX_BYTES = 8 * 1024 * 1024  # one log file never grows past this; the excess rolls into name.1.log


def log_path_for(logs_dir: Path, runner: str, model_id: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id).strip("._") or "model"
    return Path(logs_dir) / f"{runner}-{safe}.log"


def rotate(path: Path, keep: int = KEEP_OLD) -> None:
    """name.log -> name.1.log -> ... ; the oldest beyond `keep` is deleted."""
    def numbered(n: int) -> Path:
        return path.with_name(f"{path.stem}.{n}{path.suffix}")

    with contextlib.suppress(OSError):
        numbered(keep).unlink(missing_ok=True)
    for n in range(keep - 1, 0, -1):
        if numbered(n).exists():
            with contextlib.suppress(OSError):
                numbered(n).replace(numbered(n + 1))
    if path.exists():
        with contextlib.suppress(OSError):
            path.replace(numbered(1))


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


class LogPump:
    """Copies a child's output into its log file from a daemon thread, rolling the file at MAX_BYTES."""

    def __init__(self, source: IO[bytes], path: Path, max_bytes: int = MAX_BYTES) -> None:
        self.path = path
        self._source = source
        self._max_bytes = max_bytes
        self._out = open(path, "ab")
        self._size = self._out.tell()
        self._thread = threading.Thread(target=self._run, name=f"log:{path.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        read = getattr(self._source, "read1", self._source.read)
        try:
            while True:
                chunk = read(65536)
                if not chunk:
                    break
                if self._size + len(chunk) > self._max_bytes:
                    self._out.close()
                    rotate(self.path)
                    self._out = open(self.path, "ab")
                    self._size = 0
                self._out.write(chunk)
                self._out.flush()
                self._size += len(chunk)
        except (OSError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError):
                self._out.close()
            with contextlib.suppress(OSError):
                self._source.close()

    def join(self, timeout: float = 2.0) -> None:
        self._thread.join(timeout)
