"""Check a bundle against its manifest, unpacked (a folder) or packed (.tar, .tar.gz, .tar.zst), installing nothing.

Every file is read and hashed; the report names each file that is missing, extra or different (size or
sha256), and for a packed bundle the file inside which the archive ends when it was cut short.
Checking a folder uses the standard library only (the installer runs it on the target).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from oi_local.bundle import manifest as mf
from oi_local.bundle.manifest import BundleError, Manifest
from oi_local.files import sha256_file

BLOCK = 1 << 20
# files a desktop or an archive tool may add beside the bundle's own; never fed to pip (only wheels/ is)
_HARMLESS = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


@dataclass(frozen=True)
class Difference:
    path: str
    problem: str  # "missing", "extra", "size 12 instead of 34", "sha256 differs", "the archive ends inside it ..."

    @property
    def blocks_install(self) -> bool:
        """An extra file matters only where the installer reads a folder as a whole (pip's --find-links)."""
        if self.problem != "extra":
            return True
        return self.path.startswith(mf.WHEELS_DIR + "/") and Path(self.path).name not in _HARMLESS


@dataclass(frozen=True)
class Report:
    location: str
    manifest: Manifest
    differences: tuple[Difference, ...]
    files_checked: int
    bytes_checked: int

    @property
    def ok(self) -> bool:
        return not self.differences

    @property
    def installable(self) -> bool:
        return not any(d.blocks_install for d in self.differences)

    def summary(self) -> str:
        if self.ok:
            return (f"{self.location}: all {self.files_checked} files match the manifest "
                    f"({self.bytes_checked:,} bytes checked).")
        return f"{self.location}: " + "; ".join(f"{d.path}: {d.problem}" for d in self.differences) + "."

    def refusal(self) -> BundleError:
        blocking = [d for d in self.differences if d.blocks_install] or list(self.differences)
        named = "; ".join(f"{d.path} ({d.problem})" for d in blocking[:8])
        more = f" and {len(blocking) - 8} more" if len(blocking) > 8 else ""
        return BundleError(
            f"The bundle in {self.location} does not match its manifest: {named}{more}. It was damaged or cut "
            "short on the way; nothing was installed. Copy the bundle file again from the machine that made it "
            "(check it there and here with `oi-local bundle verify FILE`, or compare `sha256sum`), unpack it "
            "again and rerun install.sh."
        )


def verify(path: Path, *, on_bytes: Callable[[int], None] | None = None) -> Report:
    """A folder (unpacked bundle) or a bundle file."""
    path = Path(path)
    if path.is_dir():
        return verify_dir(path, on_bytes=on_bytes)
    if path.is_file():
        return verify_archive(path, on_bytes=on_bytes)
    raise BundleError(f"{path} does not exist. Give a bundle file (.tar, .tar.gz, .tar.zst) or the folder it "
                      "unpacks into (oi_local-bundle/).")


def verify_dir(root: Path, *, on_bytes: Callable[[int], None] | None = None, manifest: Manifest | None = None) -> Report:
    root = Path(root)
    manifest = manifest or mf.load(root)
    expected = {f.path: f for f in manifest.files}
    differences: list[Difference] = []
    seen: set[str] = set()
    checked = total = 0
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files) + sorted(d for d in dirs if (Path(folder) / d).is_symlink()):
            full = Path(folder) / name
            rel = full.relative_to(root).as_posix()
            if rel == mf.MANIFEST:
                continue
            record = expected.get(rel)
            if record is None:
                if name not in _HARMLESS:
                    differences.append(Difference(rel, "extra"))
                continue
            seen.add(rel)
            if full.is_symlink() or not full.is_file():
                differences.append(Difference(rel, "not a regular file"))
                continue
            size = full.stat().st_size
            if size != record.size:
                differences.append(Difference(rel, f"size {size:,} bytes instead of {record.size:,}"))
                continue
            if sha256_file(full, on_bytes=on_bytes).hexdigest() != record.sha256:
                differences.append(Difference(rel, "sha256 differs"))
            checked += 1
            total += size
    differences += [Difference(p, "missing") for p in expected if p not in seen]
    return Report(str(root), manifest, tuple(_ordered(differences, expected)), checked, total)


def verify_archive(path: Path, *, on_bytes: Callable[[int], None] | None = None) -> Report:
    """Read the archive once, start to end, hashing every member (the manifest is its second member)."""
    import tarfile
    import zlib

    path = Path(path)
    manifest_text: str | None = None
    found: dict[str, tuple[int, str]] = {}
    odd: list[Difference] = []
    cut: Difference | None = None
    current = "(the archive's first header)"
    try:
        with open_archive(path) as archive:
            for member in archive:
                name = _strip_root(member.name)
                if name is None or member.isdir():
                    continue
                current = name
                if not member.isfile():
                    odd.append(Difference(name, "not a regular file"))
                    continue
                handle = archive.extractfile(member)
                if name == mf.MANIFEST:
                    manifest_text = handle.read().decode("utf-8", "replace")
                    continue
                digest = hashlib.sha256()
                size = 0
                while block := handle.read(BLOCK):
                    digest.update(block)
                    size += len(block)
                    if on_bytes:
                        on_bytes(len(block))
                if size != member.size:
                    raise EOFError("short member")
                found[name] = (size, digest.hexdigest())
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        if manifest_text is None and not found and isinstance(error, tarfile.ReadError) and current.startswith("("):
            raise BundleError(f"{path} is not a bundle file (not a tar archive: {error}). Give the .tar "
                              "(.tar.gz, .tar.zst) that `oi-local bundle create` wrote, or its unpacked folder.") from error
        cut = Difference(current, f"the archive ends inside it ({error}): the file was cut short on the way")
    if manifest_text is None:
        raise BundleError(f"{path} has no {mf.MANIFEST}" + (f" ({cut.path}: {cut.problem})" if cut else "") +
                          ". It is not a whole oi_local bundle: copy it again from the machine that made it.")
    manifest = mf.loads(manifest_text, where=f"{path}:{mf.MANIFEST}")
    expected = {f.path: f for f in manifest.files}
    differences = list(odd)
    for name, (size, sha) in found.items():
        record = expected.get(name)
        if record is None:
            differences.append(Difference(name, "extra"))
        elif size != record.size:
            differences.append(Difference(name, f"size {size:,} bytes instead of {record.size:,}"))
        elif sha != record.sha256:
            differences.append(Difference(name, "sha256 differs"))
    if cut is not None and cut.path in expected:
        found.pop(cut.path, None)
        differences.append(cut)
    differences += [Difference(p, "missing") for p in expected if p not in found and (cut is None or p != cut.path)]
    checked = sum(1 for n in found if n in expected)
    total = sum(s for n, (s, _) in found.items() if n in expected)
    return Report(str(path), manifest, tuple(_ordered(differences, expected)), checked, total)


def open_archive(path: Path):
    """A tarfile reading the bundle file as a stream (plain, gzip or zstd, told by its first bytes)."""
    import tarfile

    with open(path, "rb") as probe:
        magic = probe.read(4)
    if magic == b"\x28\xb5\x2f\xfd":
        from oi_local.bundle.archive import zstd_reader

        return tarfile.open(fileobj=zstd_reader(path), mode="r|")
    return tarfile.open(path, mode="r|*")


def _strip_root(name: str) -> str | None:
    """"oi_local-bundle/wheels/x.whl" -> "wheels/x.whl" (whatever the top folder is called)."""
    parts = name.lstrip("./").split("/", 1)
    return parts[1] if len(parts) == 2 and parts[1] else None


def _ordered(differences: list[Difference], expected: dict) -> list[Difference]:
    order = {p: i for i, p in enumerate(expected)}
    return sorted(differences, key=lambda d: (order.get(d.path, len(order)), d.path))
