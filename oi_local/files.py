"""The program's own files: atomic writes, locks between processes, sha256 of a file, sizes for people.

Every file oi_local writes for itself (indexes, state, conversations, exports, settings) goes through
`write_atomic`: a temporary file in the same folder, then one rename, so a crash or a full disk leaves the
old file or the new one, never half of one, and never a stray temporary file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from oi_local.errors import OiLocalError

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


class FileWriteError(OiLocalError, OSError):
    """A file of the program's own could not be written (full disk, no permission); nothing was changed.

    Also an OSError, so callers that treat a failed write as an OSError keep doing so."""

    def __init__(self, message: str, *, path: Path, os_error: OSError) -> None:
        super().__init__(message)
        self.path = path
        self.os_error = os_error


def write_atomic(path: Path, data: str | bytes, *, mode: int = PRIVATE_FILE, fsync: bool = False) -> Path:
    """Write `data` to `path` through a temporary file in the same folder and one rename.

    Raises FileWriteError (one paragraph: what, why, what to do) when it cannot be written; the file that
    was there before is untouched and no temporary file is left behind."""
    path = Path(path).expanduser()
    payload = data.encode("utf-8") if isinstance(data, str) else data
    temp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
            out.flush()
            if fsync:
                os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
        temp = None
    except OSError as error:
        raise FileWriteError(_write_problem(path, error), path=path, os_error=error) from error
    finally:
        if temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp)
    return path


def write_json_atomic(path: Path, data: object, *, indent: int | None = 1, mode: int = PRIVATE_FILE,
                      fsync: bool = False) -> Path:
    return write_atomic(path, json.dumps(data, indent=indent, ensure_ascii=False, default=str), mode=mode,
                        fsync=fsync)


def _write_problem(path: Path, error: OSError) -> str:
    import errno

    reason = error.strerror or str(error)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        todo = "Free some disk space on that filesystem and run the same command again"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        todo = "Make that folder writable for this user (or set OI_LOCAL_HOME to one that is) and try again"
    else:
        todo = "Fix that and run the same command again"
    return f"Could not write {path}: {reason}. {todo}; the previous version of the file, if any, is unchanged."


@contextlib.contextmanager
def file_lock(path: Path, *, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """An exclusive lock between processes on `path` (a lock file; created 0600 if missing).

    `on_wait()` is called once when another process holds the lock, before waiting for it."""
    from filelock import FileLock, Timeout

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), mode=PRIVATE_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if on_wait is not None:
            on_wait()
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def sha256_file(path: Path, *, on_bytes: Callable[[int], None] | None = None, digest=None):
    """The sha256 hashlib object of a file (or `digest` fed with it), read in 1 MiB blocks."""
    digest = digest or hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            if on_bytes:
                on_bytes(len(block))
    return digest


def format_bytes(n: int | float | None) -> str:
    """Decimal units, as disks and downloads are sold: 1.5 GB = 1.5 x 10^9 bytes."""
    if n is None:
        return "size unknown"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"
