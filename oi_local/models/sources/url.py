"""A plain URL as a source. Over http:// nothing proves the bytes are the published ones (anyone on the way
can change them), so such a source is used only when the catalog entry gives the file's sha256."""

from __future__ import annotations

from oi_local.models.catalog import CatalogEntry, Source
from oi_local.models.sources import Fetched, SourceUnavailable, Workspace
from oi_local.models.sources.transfer import transfer


def fetch(entry: CatalogEntry, source: Source, work: Workspace) -> Fetched:
    if not source.url:
        raise SourceUnavailable("no url given")
    if source.url.lower().startswith("http://") and not entry.sha256:
        raise SourceUnavailable(
            f"{source.url} is plain http and the catalog entry gives no sha256, so nothing could prove the "
            "file is the published one: refused",
            advice=f"add the file's sha256 to the catalog entry of {entry.id} (`sha256: <64 hex digits>`, from its "
                   "publisher), or give an https:// source",
        )
    size = entry.size_bytes if entry.size_exact else None  # else the server's
    return transfer(entry, work, source.url, headers={}, size=size, resume_key={"url": source.url, "size": size},
                    record={"kind": "url", "url": source.url}, reference=entry.sha256, reference_kind="catalog")
