"""A file already on this machine as a source: registered where it is, after its sha256 is checked."""

from __future__ import annotations

from pathlib import Path

from oi_local.errors import OiLocalError
from oi_local.models.catalog import CatalogEntry, Source
from oi_local.models.sources import Fetched, SourceUnavailable, Workspace


def fetch(entry: CatalogEntry, source: Source, work: Workspace) -> Fetched:
    from oi_local.models.download import hash_file

    path = Path(source.path or "").expanduser()
    if not path.is_file():
        raise SourceUnavailable(f"{path} does not exist")
    digest = hash_file(path, progress=work.progress, label=f"checking {path.name}")
    if entry.sha256 and digest != entry.sha256:
        raise OiLocalError(f"{path} (the local source of {entry.id}) has sha256 {digest}, not the catalog's "
                           f"{entry.sha256}. It was not registered; check the file or the catalog entry.")
    return Fetched(path.absolute(), digest, entry.sha256 or digest, "catalog" if entry.sha256 else "recorded",
                   {"kind": "local"}, in_place=True)
