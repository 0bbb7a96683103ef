"""Writing the bundle file: one tar (optionally gzip or zstd), every member hashed as it is written.

The file is written under a temporary name beside the output and renamed only when it is complete, so a
failed or interrupted `bundle create` never leaves something that looks like a bundle.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

from oi_local.bundle.manifest import BundleError, FileRecord

COMPRESSIONS = ("zstd", "gzip")
SUFFIXES = {None: ".tar", "gzip": ".tar.gz", "zstd": ".tar.zst"}
GZIP_LEVEL = 6  # gzip's own default: level 9 takes about twice as long for a fraction of a percent
ZSTD_LEVEL = 3  # zstd's own default


def available_compressions() -> list[str]:
    """What this Python offers: gzip always (zlib), zstd with Python 3.14's compression.zstd or `zstandard`."""
    found = []
    if _zstd_module() is not None:
        found.append("zstd")
    found.append("gzip")
    return found


def choose_compression(wanted: str | None) -> str | None:
    """None: no compression; "auto": zstd where offered, else gzip; else the one named (or a clear error)."""
    if wanted in (None, "none"):
        return None
    offered = available_compressions()
    if wanted == "auto":
        return offered[0]
    if wanted not in COMPRESSIONS:
        raise BundleError(f"--compress {wanted} is not known; use zstd or gzip (or leave --compress out for a plain tar).")
    if wanted not in offered:
        raise BundleError(
            "--compress zstd needs zstd support in this Python: Python 3.14's compression.zstd or the `zstandard` "
            "package (pip install zstandard). Use --compress gzip instead, or no --compress: model files hardly "
            "shrink, so a plain tar is nearly as small."
        )
    return wanted


class _HashingReader(io.RawIOBase):
    def __init__(self, handle, on_bytes: Callable[[int], None] | None) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.size = 0
        self.on_bytes = on_bytes

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        block = self.handle.read(n)
        self.digest.update(block)
        self.size += len(block)
        if self.on_bytes and block:
            self.on_bytes(len(block))
        return block


class BundleWriter:
    """`with BundleWriter(out, root="oi_local-bundle", compression="gzip") as w: w.add_file(...)`."""

    def __init__(self, output: Path, *, root: str, compression: str | None, mtime: float | None = None) -> None:
        self.output = Path(output)
        self.root = root
        self.compression = compression
        self.mtime = int(mtime if mtime is not None else time.time())
        self.partial = self.output.with_name(f".{self.output.name}.partial")
        self._stack = contextlib.ExitStack()
        self._tar: tarfile.TarFile | None = None
        self._dirs: set[str] = set()

    def __enter__(self) -> BundleWriter:
        self.output.parent.mkdir(parents=True, exist_ok=True)
        raw = self._stack.enter_context(open(self.partial, "wb"))
        if self.compression == "gzip":
            import gzip

            raw = self._stack.enter_context(gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                          compresslevel=GZIP_LEVEL, mtime=self.mtime))
        elif self.compression == "zstd":
            raw = self._stack.enter_context(zstd_writer(raw))
        self._tar = self._stack.enter_context(tarfile.open(fileobj=raw, mode="w|", format=tarfile.PAX_FORMAT))
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._stack.close()
        except BaseException:
            self.partial.unlink(missing_ok=True)
            raise
        if exc_type is None:
            os.replace(self.partial, self.output)
        else:
            self.partial.unlink(missing_ok=True)

    def _info(self, path: str, size: int, mode: int) -> tarfile.TarInfo:
        self._parents(path)
        info = tarfile.TarInfo(f"{self.root}/{path}")
        info.size, info.mode, info.mtime = size, mode, self.mtime
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    def _parents(self, path: str) -> None:
        parts = path.split("/")[:-1]
        for i in range(len(parts) + 1):
            folder = "/".join(parts[:i])
            if folder in self._dirs:
                continue
            self._dirs.add(folder)
            info = tarfile.TarInfo(f"{self.root}/{folder}".rstrip("/"))
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, self.mtime
            self._tar.addfile(info)

    def add_bytes(self, path: str, data: bytes, *, mode: int = 0o644) -> FileRecord:
        self._tar.addfile(self._info(path, len(data), mode), io.BytesIO(data))
        return FileRecord(path, len(data), hashlib.sha256(data).hexdigest())

    def add_file(self, path: str, source: Path, *, size: int, sha256: str, mode: int = 0o644,
                 on_bytes: Callable[[int], None] | None = None, what: str | None = None) -> FileRecord:
        """Copy `source` in, hashing it on the way; anything but exactly (size, sha256) aborts the bundle."""
        with open(source, "rb") as handle:
            reader = _HashingReader(handle, on_bytes)
            try:
                self._tar.addfile(self._info(path, size, mode), reader)
            except (tarfile.ReadError, OSError) as error:  # the file shrank while being read
                raise BundleError(f"{source} changed while it was being packed ({error}); nothing was written. "
                                  "Run the same command again.") from error
            if handle.read(1):
                raise BundleError(f"{source} grew while it was being packed; nothing was written. Run the same "
                                  "command again.")
        if reader.digest.hexdigest() != sha256:
            raise BundleError(
                f"{what or source} does not match its sha256 ({source}: expected {sha256}, read "
                f"{reader.digest.hexdigest()}), so it was not packed and no bundle was written. "
                "Check the file (`oi-local models verify ID` for a model) and download it again if it is damaged."
            )
        return FileRecord(path, size, sha256)


# ---- zstd, where this Python has it --------------------------------------------------------------------------


def _zstd_module():
    try:
        from compression import zstd  # Python 3.14

        return zstd
    except ImportError:
        pass
    try:
        import zstandard

        return zstandard
    except ImportError:
        return None


def zstd_writer(raw):
    module = _zstd_module()
    if module is None:
        raise BundleError("zstd is not available in this Python (Python 3.14 or `pip install zstandard`).")
    if hasattr(module, "ZstdFile"):
        return module.ZstdFile(raw, mode="w", level=ZSTD_LEVEL)
    return module.ZstdCompressor(level=ZSTD_LEVEL).stream_writer(raw, closefd=False)


def zstd_reader(path: Path):
    module = _zstd_module()
    if module is None:
        raise BundleError(
            f"{path} is compressed with zstd, which this Python cannot read (it needs Python 3.14 or "
            "`pip install zstandard`). Unpack it with `tar --zstd -xf` (zstd installed) and check the folder instead."
        )
    if hasattr(module, "ZstdFile"):
        return module.ZstdFile(path, mode="r")
    return module.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)
