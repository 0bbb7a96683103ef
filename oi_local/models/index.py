"""The models folder's index: one record per stored model, and what a record says about its file.

`index.json` is written atomically (0600) under an inter-process lock; a temporary file a killed writer left
(`.index.json.*.tmp`, this version's or an older one's) is removed by the next writer.

A record remembers the file's fingerprint (size, mtime, ctime, inode, device) from the moment it was last
hashed in full. Restoring size and mtime after an in-place edit does not restore the ctime, and replacing
the file changes the inode, so any of them differing means "hash it again before it is used". A record
also says where its reference sha256 came from: the catalog, the user's own pin (`models verify --trust`),
the hub (its LFS ETag), or only the hash recorded when the file was added.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from oi_local.errors import OiLocalError
from oi_local.files import file_lock, remove_stale_temps, write_json_atomic
from oi_local.models.catalog import CatalogEntry

INDEX = "index.json"
DOWNLOADS = ".downloads"
FINGERPRINT = ("size", "mtime_ns", "ctime_ns", "inode", "device")
PUBLISHED = ("catalog", "hub", "user")  # reference kinds that say which bytes are the right ones
TRUSTED = ("catalog", "user")  # reference kinds a program file may be run on (not the hub's ETag alone)


@dataclass
class StoredModel:
    id: str
    name: str
    format: str
    path: Path
    size_bytes: int
    verified: bool | None  # None: no published checksum to compare with (the file's own hash is recorded)
    last_used: float | None
    sha256: str | None
    entry: CatalogEntry | None
    trusted: bool = False  # its sha256 matches one from the catalog or pinned by the user: it may be run
    sha256_source: str | None = None  # "catalog" | "user" | "hub" | "recorded"

    def to_json(self) -> dict:
        return {
            "id": self.id, "name": self.name, "format": self.format, "path": str(self.path),
            "size_bytes": self.size_bytes, "verified": self.verified, "trusted": self.trusted,
            "sha256_source": self.sha256_source, "last_used": self.last_used, "sha256": self.sha256,
            "in_catalog": self.entry is not None, "present": self.path.exists(),
        }


def fingerprint(path: Path) -> dict[str, int]:
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "inode": st.st_ino,
            "device": st.st_dev}


def unchanged(record: dict, path: Path) -> bool:
    """The file is the one that was hashed: same size, mtime, ctime, inode and device (a record of an older
    version, without ctime or inode, counts as changed: it is hashed once more)."""
    now = fingerprint(path)
    return all(record.get(key) == now[key] for key in FINGERPRINT)


def verdict(matches: bool, reference_kind: str | None) -> bool | None:
    """True: matches a published checksum; None: matches only the hash recorded when it was added."""
    if not matches:
        return False
    return True if reference_kind in PUBLISHED else None


def is_trusted(record: dict) -> bool:
    return record.get("verified") is True and record.get("sha256_source") in TRUSTED


class Index:
    """index.json of one models folder; `on_wait(message)` is told when another process holds a lock."""

    def __init__(self, models_dir: Path, on_wait: Callable[[str], None]) -> None:
        self.models_dir = models_dir
        self.path = models_dir / INDEX
        self._on_wait = on_wait

    def read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            raise OiLocalError(f"The models index {self.path} is unreadable ({error}). Move it away and import "
                               "the model files again with `oi-local models import PATH`.") from error
        return {r["id"]: r for r in data.get("models", []) if isinstance(r, dict) and "id" in r}

    def update(self, change: Callable[[dict[str, dict]], None]) -> dict[str, dict]:
        """Read, change and write the index under its lock; returns the index as written.
        Raises FileWriteError (one paragraph, the old index untouched) when it cannot be written."""
        with self.lock(".index.lock"):
            remove_stale_temps(self.models_dir, INDEX)
            index = self.read()
            change(index)
            write_json_atomic(self.path, {"version": 1, "models": list(index.values())})
            return index

    def put(self, record: dict) -> None:
        """Add or replace a record, keeping when the model was last used."""
        def change(index: dict) -> None:
            record["last_used"] = (index.get(record["id"]) or {}).get("last_used")
            index[record["id"]] = record

        self.update(change)

    def amend(self, model_id: str, **fields) -> dict:
        """Change some fields of one record; returns the record as written."""
        return self.update(lambda index: index[model_id].update(fields))[model_id]

    def remove(self, model_id: str) -> None:
        self.update(lambda index: index.pop(model_id, None))

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        def waiting() -> None:
            self._on_wait(f"Waiting for another oi-local process using {name.removesuffix('.lock')} ...")

        with file_lock(self.models_dir / DOWNLOADS / name, on_wait=waiting):
            yield
