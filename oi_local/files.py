"""The program's own files: atomic writes, locks between processes, sha256 of a file, sizes for people.

Every file oi_local writes for itself (indexes, state, conversations, exports, settings) goes through
`write_atomic`: a temporary file in the same folder, then one rename, so a crash or a full disk leaves the
old file or the new one, never half of one, and never a stray temporary file. Big files (models) are copied
with `clone_file` the same way: a copy-on-write clone where the filesystem has one, else a plain copy.
Folders that hold the user's data are made with `private_dir` (0700).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from oi_local.errors import OiLocalError

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
STALE_TEMP_SECONDS = 60.0  # a temporary file older than this, found under the writer's lock, is a crash's leftover
_FICLONE = 0x40049409  # Linux ioctl: make the destination share the source's blocks (fcntl.FICLONE from 3.12)


class FileWriteError(OiLocalError, OSError):
    """A file of the program's own could not be written (full disk, no permission); nothing was changed.

    Also an OSError, so callers that treat a failed write as an OSError keep doing so."""

    def __init__(self, message: str, *, path: Path, os_error: OSError) -> None:
        super().__init__(message)
        self.path = path
        self.os_error = os_error

    @classmethod
    def of(cls, path: Path, error: OSError) -> FileWriteError:
        """The one-paragraph error for `error` while writing `path` (a FileWriteError is passed through)."""
        if isinstance(error, FileWriteError):
            return error
        return cls(_write_problem(Path(path), error), path=Path(path), os_error=error)


def write_atomic(path: Path, data: str | bytes, *, mode: int = PRIVATE_FILE, fsync: bool = False) -> Path:
    """Write `data` to `path` through a temporary file in the same folder and one rename.

    Raises FileWriteError (one paragraph: what, why, what to do) when it cannot be written; the file that
    was there before is untouched and no temporary file is left behind."""
    path = Path(path).expanduser()
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with _replacing(path, mode) as temp, open(temp, "wb") as out:
        out.write(payload)
        out.flush()
        if fsync:
            os.fsync(out.fileno())
    return path


@contextlib.contextmanager
def _replacing(path: Path, mode: int) -> Iterator[Path]:
    """Yields an empty temporary file beside `path`; once the block is done, it becomes `path` (mode `mode`)
    in one rename. Any OSError becomes a FileWriteError, and the temporary file is gone either way."""
    temp: str | None = None
    try:
        _make_folders(path.parent, private=not mode & 0o077)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        yield Path(temp)
        os.chmod(temp, mode)
        os.replace(temp, path)
        temp = None
    except OSError as error:
        raise FileWriteError.of(path, error) from error
    finally:
        if temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp)


def write_json_atomic(path: Path, data: object, *, indent: int | None = 1, mode: int = PRIVATE_FILE,
                      fsync: bool = False) -> Path:
    return write_atomic(path, json.dumps(data, indent=indent, ensure_ascii=False, default=str), mode=mode,
                        fsync=fsync)


def open_private(path: Path, mode: str = "wb"):
    """Open a file for writing ("wb" truncates, "ab" appends), created 0600 when it is new."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    return os.fdopen(os.open(path, flags, PRIVATE_FILE), mode)


def remove_stale_temps(folder: Path, name: str, *, older_than: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Delete `.NAME.*.tmp` files in `folder` (write_atomic's, and older versions' `.NAME.PID.tmp`) that are
    older than `older_than` seconds: what a killed writer left. Call it holding the lock the writers take."""
    removed = []
    now = time.time()
    try:
        candidates = list(Path(folder).glob(f".{name}.*.tmp"))
    except OSError:
        return removed
    for temp in candidates:
        with contextlib.suppress(OSError):
            if now - temp.lstat().st_mtime >= older_than:
                temp.unlink()
                removed.append(temp)
    return removed


def private_dir(path: Path) -> Path:
    """`path` as a folder only its owner can enter (0700): missing folders are created so, an existing one
    of ours is tightened. Raises FileWriteError when it cannot be created."""
    path = Path(path).expanduser()
    try:
        _make_folders(path, private=True)
        tighten(path, PRIVATE_DIR)
    except OSError as error:
        raise FileWriteError.of(path, error) from error
    return path


def _make_folders(path: Path, *, private: bool) -> None:
    """mkdir -p; the folders it creates are 0700 when they are for private files (a file only its owner may
    read is kept in a folder only its owner may list: the names of conversations are the user's words)."""
    if not private:
        path.mkdir(parents=True, exist_ok=True)
        return
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, PRIVATE_DIR)


def tighten(path: Path, mode: int) -> None:
    """Take away every permission bit of `path` that `mode` does not have, if this user owns it."""
    st = os.stat(path)
    if st.st_uid == os.geteuid() and (st.st_mode & 0o777) & ~mode:
        os.chmod(path, (st.st_mode & 0o777) & mode)


def clone_file(src: Path, dst: Path, *, mode: int = PRIVATE_FILE,
               on_bytes: Callable[[int], None] | None = None) -> str:
    """Copy `src` to `dst` (through a temporary file beside it and one rename, `mode` 0600 by default).

    A copy-on-write clone where the filesystem has one (Linux FICLONE: btrfs, XFS, bcachefs, ZFS 2.2;
    macOS clonefile on APFS), so the copy costs no space or time until one side changes; else a plain copy.
    Never a hard link: an in-place edit of one file never changes the other. Returns "reflink" or "copy".
    Raises FileWriteError (nothing left behind) when `dst` cannot be written."""
    src, dst = Path(src), Path(dst)
    with _replacing(dst, mode) as temp:
        how = "reflink" if _reflink(src, temp) else "copy"
        if how == "copy":
            with open(src, "rb") as source, open(temp, "wb") as out:
                while block := source.read(1 << 20):
                    out.write(block)
                    if on_bytes:
                        on_bytes(len(block))
        elif on_bytes:
            on_bytes(src.stat().st_size)
    return how


def _reflink(src: Path, temp: Path) -> bool:
    """Make `temp` (an empty file) a copy-on-write clone of `src`; False where the filesystem cannot."""
    if sys.platform == "darwin":
        return _clonefile(src, temp)
    if not sys.platform.startswith("linux"):
        return False
    import fcntl

    with open(src, "rb") as source, open(temp, "r+b") as out:
        try:
            fcntl.ioctl(out.fileno(), _FICLONE, source.fileno())
        except OSError:  # EOPNOTSUPP (ext4, tmpfs), EXDEV (another filesystem), EINVAL, ENOTTY, ...
            return False
    return True


def _clonefile(src: Path, temp: Path) -> bool:
    import ctypes

    try:
        clonefile = ctypes.CDLL(None, use_errno=True).clonefile
    except (OSError, AttributeError):
        return False
    os.unlink(temp)  # clonefile creates the destination itself
    if clonefile(os.fsencode(src), os.fsencode(temp), 0) == 0:
        return True
    open(temp, "wb").close()  # back to an empty file for the plain copy
    return False


def what_to_do(error: OSError) -> str:
    """The advice for an OSError on the program's own files (full disk, no permission, ...)."""
    import errno

    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "Free some disk space on that filesystem and run the same command again"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "Make that folder writable for this user (or set OI_LOCAL_HOME to one that is) and try again"
    return "Fix that and run the same command again"


def _write_problem(path: Path, error: OSError) -> str:
    reason = error.strerror or str(error)
    return (f"Could not write {path}: {reason}. {what_to_do(error)}; the previous version of the file, if any, is "
            "unchanged.")


@contextlib.contextmanager
def file_lock(path: Path, *, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """An exclusive lock between processes on `path` (a lock file; created 0600 if missing).

    `on_wait()` is called once when another process holds the lock, before waiting for it."""
    from filelock import FileLock, Timeout

    path = Path(path)
    _make_folders(path.parent, private=True)
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


def nearest_existing(path: Path) -> Path:
    """The path itself if it exists, else its nearest existing parent (where a folder would be made)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
