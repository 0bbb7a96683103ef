"""The models folder: what is on disk, verified or not, trusted or not, and how a catalog model gets there.

Layout of the folder (0700; every file in it 0600, a trusted llamafile 0700):
    index.json                  one record per model (models/index.py)
    <file>                      a finished, verified model (the catalog's file name)
    .downloads/<file>.part      a download in progress (resumed by the next ensure())
    .downloads/<file>.json      what the part belongs to (url, hub etag, size), to resume only the same file
    .quarantine/                files found in the way of a download and not matching it (never deleted)

A model is hashed in full when it arrives, again the first time it is used, and again whenever its
fingerprint (size, mtime, ctime, inode) changed; `verify=True` hashes it whatever the fingerprint says.
Where a fetched file comes from is models/sources/; how a file the user has is taken in, models/imports.py.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from oi_local import env
from oi_local.errors import OiLocalError
from oi_local.files import PRIVATE_FILE, FileWriteError, private_dir, remove_stale_temps, what_to_do
from oi_local.models import imports
from oi_local.models.catalog import CatalogEntry
from oi_local.models.index import Index, StoredModel, fingerprint, is_trusted, unchanged, verdict
from oi_local.models.sources import Fetched, SourceUnavailable, Workspace, free_bytes, needs_network

__all__ = ["ModelStore", "StoredModel", "free_bytes"]

EXECUTABLE = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH


class ModelStore:
    def __init__(self, models_dir: Path, catalog: list[CatalogEntry], *, offline: bool | None = None) -> None:
        """`offline`: never fetch anything (None: as HF_HUB_OFFLINE says when a model is wanted)."""
        self.models_dir = Path(models_dir).expanduser().absolute()
        self.catalog = list(catalog)
        self._by_id = {e.id: e for e in self.catalog}
        self._offline = offline
        self.index = Index(self.models_dir, on_wait=_say)

    @property
    def offline(self) -> bool:
        return env.hub_offline() if self._offline is None else self._offline

    # ---- reading -------------------------------------------------------------------------------------------

    def list(self) -> list[StoredModel]:
        return [self._stored(r) for r in sorted(self.index.read().values(), key=lambda r: r["id"])]

    def get(self, model_id: str) -> StoredModel | None:
        record = self.index.read().get(model_id)
        return self._stored(record) if record else None

    def partials(self) -> list[tuple[CatalogEntry, int]]:
        """Catalog models with an unfinished download (and its bytes so far): the next ensure() resumes it."""
        return [(e, n) for e in self.catalog if (n := self.partial_bytes(e)) > 0]

    def partial_bytes(self, entry: CatalogEntry) -> int:
        return self._work(False).partial_bytes(entry.file)

    # ---- ensure ----------------------------------------------------------------------------------------------

    def ensure(self, entry: CatalogEntry, *, progress: bool = True, verify: bool = False) -> StoredModel:
        """The model on disk and verified: found (hashed again when needed, or always with `verify`), or
        fetched from the first source that works."""
        imports.check_file_name(entry.file)
        with self._folder_problems(f"Getting {entry.id}"):
            private_dir(self.models_dir)
            with self.index.lock(f"{entry.file}.lock"):
                self._remove_leftovers(entry.file)
                found = self._find_present(entry, progress=progress, verify=verify)
                if found is not None:
                    return found
                return self._fetch(entry, progress=progress)

    def checked(self, model_id: str, *, progress: bool = True, verify: bool = False,
                repair: bool = False) -> StoredModel:
        """A stored model about to be used: hashed in full on its first use and whenever its file changed
        (always with `verify`). A mismatch gives verified=False; with `repair`, a catalog model the store
        downloaded itself is deleted and fetched again instead."""
        record = self._require(model_id)
        entry = self._entry_of(record)
        path = Path(record["path"])
        if not path.is_file():
            if repair and entry is not None and self._ours(record):
                self.index.remove(model_id)
                return self.ensure(entry, progress=progress)
            return self._stored(record)
        with self._folder_problems(f"Checking {model_id}"), self.index.lock(f"{path.name}.lock"):
            ok = self._current(record, path, entry, progress=progress, verify=verify)
        if not ok and repair and entry is not None and self._ours(record):
            _say(f"{model_id}: {path.name} does not match its sha256; deleting it and downloading again.")
            path.unlink(missing_ok=True)
            self.index.remove(model_id)
            return self.ensure(entry, progress=progress)
        return self._stored(self.index.read()[model_id])

    def trusted_path(self, path: Path, *, progress: bool = True, verify: bool = False) -> bool:
        """May this file be run? A file the store holds keeps the store's verdict (checked now); a file the
        store does not know was named by the user, who vouches for it."""
        path = Path(path).expanduser().absolute()
        record = next((r for r in self.index.read().values() if Path(r["path"]) == path), None)
        if record is None:
            return True
        return self.checked(record["id"], progress=progress, verify=verify).trusted

    def _find_present(self, entry: CatalogEntry, *, progress: bool, verify: bool) -> StoredModel | None:
        index = self.index.read()
        record = index.get(entry.id) or next((r for r in index.values() if r.get("entry") == entry.id), None)
        if record is not None:
            path = Path(record["path"])
            if path.is_file():
                if self._current(record, path, entry, progress=progress, verify=verify):
                    return self._stored(self.index.read()[record["id"]])
                if not self._ours(record):
                    raise OiLocalError(
                        f"The file registered as {record['id']} ({path}) does not match its sha256 any more. "
                        f"It was imported, so it is left as it is; remove it with `oi-local models delete "
                        f"{record['id']}` and download the model again."
                    )
                _say(f"{entry.id}: {path.name} does not match its sha256; deleting it and downloading again.")
                path.unlink(missing_ok=True)
            self.index.remove(record["id"])
        target = self.models_dir / entry.file
        if target.is_file():  # put there by hand, or the index was lost
            from oi_local.models.download import hash_file

            digest = hash_file(target, progress=progress, label=f"checking {target.name}")
            size_matches = target.stat().st_size == entry.size_bytes or not entry.size_exact
            if (entry.sha256 and digest == entry.sha256) or (not entry.sha256 and size_matches):
                kind = "catalog" if entry.sha256 else "recorded"
                return self._register(entry, target, digest, sha_source=kind, source={"kind": "found"},
                                      checked_on_use=True)
            moved = imports.quarantine(self.models_dir, target)
            _say(f"{target.name} in the models folder is not {entry.id}; moved it to {moved}.")
        return None

    def _current(self, record: dict, path: Path, entry: CatalogEntry | None, *, progress: bool,
                 verify: bool) -> bool:
        """Whether the file is the one recorded, hashing it when that is not known for sure."""
        if (not verify and record.get("checked_on_use") and unchanged(record, path)
                and record.get("verified") is not False):
            return True
        return self._hash_and_record(record, path, entry, progress=progress)

    def _hash_and_record(self, record: dict, path: Path, entry: CatalogEntry | None, *, progress: bool,
                         label: str = "checking") -> bool:
        from oi_local.models.download import hash_file

        reference, kind = self._reference(record, entry)
        digest = hash_file(path, progress=progress, label=f"{label} {path.name}")
        ok = digest == reference
        if not ok and record.get("format") == "llamafile" and self._ours(record):
            path.chmod(path.stat().st_mode & ~EXECUTABLE)  # never runnable while it does not match
        self.index.amend(record["id"], verified=verdict(ok, kind), sha256=reference, sha256_source=kind,
                         actual_sha256=digest, checked_on_use=True, **fingerprint(path))
        return ok

    def _reference(self, record: dict, entry: CatalogEntry | None) -> tuple[str | None, str]:
        if entry is not None and entry.sha256:
            return entry.sha256, "catalog"
        return record.get("sha256"), record.get("sha256_source") or "recorded"

    def _fetch(self, entry: CatalogEntry, *, progress: bool) -> StoredModel:
        from oi_local.models.sources import fetch

        offline = self.offline
        work = self._work(progress)
        local_first = sorted(((needs_network(source), source) for source in entry.sources), key=lambda pair: pair[0])
        problems: list[str] = []
        advice: list[str] = []
        for remote, source in local_first:
            if offline and remote:
                problems.append(f"{source.kind}: skipped, offline")
                continue
            try:
                return self._accept(entry, fetch(entry, source, work))
            except SourceUnavailable as why:
                problems.append(f"{source.kind}: {why}")
                if why.advice and why.advice not in advice:
                    advice.append(why.advice)
        if offline:
            raise OiLocalError(
                f"{entry.id} is not in the models folder ({self.models_dir}) and this run is offline (--offline, "
                "`offline: true` in a profile, HF_HUB_OFFLINE, or OI_LOCAL_OFFLINE / the offline default an "
                "offline bundle's install wrote, <config>/offline.json), so nothing is downloaded and no "
                f"connection is made. On a connected machine run `oi-local models download {entry.id}` (without "
                "--offline and HF_HUB_OFFLINE), or copy the file here and run `oi-local models import PATH`."
            )
        todo = "; ".join(advice) if advice else "check the network (and HF_ENDPOINT / HF_TOKEN for the hub)"
        raise OiLocalError(
            f"{entry.id} could not be fetched from any of its sources ({'; '.join(problems) or 'none listed'}). "
            f"To fix it: {todo}; or import a copy of the file with `oi-local models import PATH`."
        )

    def _accept(self, entry: CatalogEntry, fetched: Fetched) -> StoredModel:
        """The one door into the models folder: a part becomes a model only when its sha256 is right."""
        if fetched.in_place:
            return self._register(entry, fetched.path, fetched.digest, sha_source=fetched.reference_kind,
                                  source=fetched.record, imported=True)
        part, reference = fetched.path, fetched.reference
        if reference and fetched.digest != reference:
            part.unlink(missing_ok=True)
            part.with_suffix(".json").unlink(missing_ok=True)
            raise OiLocalError(
                f"The download of {entry.id} is corrupt: its sha256 is {fetched.digest}, expected {reference} (from "
                f"the {fetched.reference_kind}). The file was deleted, so nothing unverified is left in the models "
                "folder. Run the download again; if it fails the same way, the source or the catalog entry is wrong."
            )
        target = self.models_dir / entry.file
        if target.exists():
            imports.quarantine(self.models_dir, target)
        os.replace(part, target)
        part.with_suffix(".json").unlink(missing_ok=True)
        # executable (by its owner) only now that it is verified; the runner still asks whether it is trusted
        target.chmod(PRIVATE_FILE | (stat.S_IXUSR if entry.format == "llamafile" else 0))
        return self._register(entry, target, fetched.digest, sha_source=fetched.reference_kind if reference
                              else "recorded", source=fetched.record, stored_as=fetched.copied_by)

    # ---- verify / trust / delete / import / mark_used --------------------------------------------------------

    def verify(self, model_id: str, *, progress: bool = False) -> StoredModel:
        """Hash the model's file in full now and record the verdict."""
        record = self._require(model_id)
        path = self._present_path(record)
        with self._folder_problems(f"Verifying {model_id}"):
            self._hash_and_record(record, path, self._entry_of(record), progress=progress, label="verifying")
        return self._stored(self.index.read()[model_id])

    def trust(self, model_id: str, *, progress: bool = True) -> StoredModel:
        """Pin the file's sha256 as the user's own: from now on it may be run while it matches. A model
        whose catalog entry gives a sha256 must match that one instead."""
        record = self._require(model_id)
        path = self._present_path(record)
        entry = self._entry_of(record)
        from oi_local.models.download import hash_file

        digest = hash_file(path, progress=progress, label=f"hashing {path.name}")
        if entry is not None and entry.sha256 and digest != entry.sha256:
            raise OiLocalError(
                f"{model_id} ({path}) has sha256 {digest}, but its catalog entry says {entry.sha256}: the file is "
                f"not the published one, so it is not trusted. Delete it (`oi-local models delete {model_id}`) and "
                "download it again."
            )
        kind = "catalog" if entry is not None and entry.sha256 else "user"
        with self._folder_problems(f"Trusting {model_id}"):
            if record.get("format") == "llamafile" and self._ours(record):
                path.chmod(path.stat().st_mode | stat.S_IXUSR)
            self.index.amend(model_id, sha256=digest, sha256_source=kind, verified=True, actual_sha256=digest,
                             checked_on_use=True, pinned=time.time(), **fingerprint(path))
        return self._stored(self.index.read()[model_id])

    def deletes_file(self, model_id: str) -> bool:
        """Whether delete(model_id) removes the file (False: an imported file, only unregistered)."""
        return self._ours(self._require(model_id))

    def delete(self, model_id: str) -> None:
        """Delete a model's file and its record; an imported file outside the folder is only unregistered."""
        record = self.index.read().get(model_id)
        if record is None:
            entry = self._by_id.get(model_id)
            part = self._work(False).part(entry.file) if entry is not None else None
            if part is not None and part.exists():
                part.unlink()
                part.with_suffix(".json").unlink(missing_ok=True)
                return
            raise OiLocalError(f"There is no model {model_id!r} in {self.models_dir}. "
                               "`oi-local models list` shows the ones there are.")
        if self._ours(record):
            Path(record["path"]).unlink(missing_ok=True)
        with self._folder_problems(f"Deleting {model_id}"):
            self.index.remove(model_id)

    def import_file(self, path: Path, model_id: str | None = None, copy: bool = False, *, link: bool = False,
                    progress: bool = True) -> StoredModel:
        """Register a .gguf/.llamafile the user has: where it is, or with `copy` cloned/copied into the models
        folder, or with `link` hard-linked there (only a read-only file: see models/imports.py)."""
        plan = imports.plan(path, self.models_dir, self.catalog, self.index.read(), model_id=model_id, copy=copy,
                            link=link, progress=progress)
        with self._folder_problems(f"Importing {plan.source.name}"):
            private_dir(self.models_dir)
            remove_stale_temps(self.models_dir, plan.target.name)
            stored_as = imports.place(plan, self.models_dir, progress=progress)
            entry = plan.entry
            return self._register(entry, plan.target, plan.digest, sha_source="catalog" if entry else "recorded",
                                  source={"kind": "import", "origin": str(plan.source)},
                                  imported=stored_as == "in place" and not self._owns(plan.target),
                                  model_id=plan.model_id, name=entry.name if entry else plan.name, fmt=plan.format,
                                  stored_as=stored_as)

    def mark_used(self, model_id: str) -> None:
        self._require(model_id)
        with self._folder_problems(f"Recording the use of {model_id}"):
            self.index.amend(model_id, last_used=time.time())

    # ---- records -------------------------------------------------------------------------------------------

    def _register(self, entry: CatalogEntry | None, path: Path, digest: str, *, sha_source: str, source: dict,
                  imported: bool = False, model_id: str | None = None, name: str | None = None,
                  fmt: str | None = None, stored_as: str | None = None, checked_on_use: bool = False) -> StoredModel:
        record = {
            "id": model_id or (entry.id if entry else imports.slug(path.stem)),
            "name": name or (entry.name if entry else path.stem),
            "file": path.name,
            "path": str(path),
            "format": fmt or (entry.format if entry else imports.FORMATS.get(path.suffix.lower(), "gguf")),
            "sha256": digest,
            "sha256_source": sha_source,
            "verified": verdict(True, sha_source),
            **fingerprint(path),
            "checked_on_use": checked_on_use,  # False: hashed once more the first time it is used
            "last_used": None,
            "added": time.time(),
            "source": source,
            "stored_as": stored_as,  # "reflink" | "copy" | "link" | "in place" | None (downloaded)
            "imported": imported,
            "entry": entry.id if entry else None,  # the catalog entry this file is, whatever its id here
        }
        self.index.put(record)
        return self._stored(record)

    def _stored(self, record: dict) -> StoredModel:
        path = Path(record["path"])
        present = path.is_file()
        current = present and unchanged(record, path)  # else not trusted until it is hashed again
        return StoredModel(
            id=record["id"], name=record.get("name") or record["id"], format=record.get("format", "gguf"),
            path=path, size_bytes=path.stat().st_size if present else 0,
            verified=record.get("verified") if present else False, last_used=record.get("last_used"),
            sha256=record.get("sha256"), entry=self._entry_of(record),
            trusted=current and is_trusted(record), sha256_source=record.get("sha256_source"),
        )

    def _entry_of(self, record: dict) -> CatalogEntry | None:
        return self._by_id.get(record.get("entry") or record["id"])

    def _require(self, model_id: str) -> dict:
        record = self.index.read().get(model_id)
        if record is None:
            raise OiLocalError(f"There is no model {model_id!r} in {self.models_dir}. "
                               "`oi-local models list` shows the ones there are.")
        return record

    def _present_path(self, record: dict) -> Path:
        path = Path(record["path"])
        if not path.is_file():
            model_id = record["id"]
            raise OiLocalError(f"The file of {model_id} is missing ({path}). Download it again with "
                               f"`oi-local models download {model_id}` or remove it with `oi-local models delete {model_id}`.")
        return path

    def _ours(self, record: dict) -> bool:
        """The store made this file (downloaded, copied or linked it in): deleting the model deletes it."""
        return not record.get("imported") and self._owns(Path(record["path"]))

    def _owns(self, path: Path) -> bool:
        try:
            path.absolute().relative_to(self.models_dir)
            return True
        except ValueError:
            return False

    def _remove_leftovers(self, file: str) -> None:
        """Temporary files a killed run left for this file (a copy of a model can be gigabytes)."""
        downloads = self._work(False).part(file).parent
        for folder, name in ((self.models_dir, file), (downloads, f"{file}.part"), (downloads, f"{file}.json")):
            remove_stale_temps(folder, name)

    def _work(self, progress: bool) -> Workspace:
        return Workspace(self.models_dir, progress)

    @contextmanager
    def _folder_problems(self, doing: str) -> Iterator[None]:
        """An OSError on the models folder (not writable, full) as one paragraph that says what to do."""
        try:
            yield
        except OSError as error:
            cause = error.os_error if isinstance(error, FileWriteError) else error
            where = error.path if isinstance(error, FileWriteError) else error.filename
            raise OiLocalError(
                f"{doing} failed on the models folder {self.models_dir}: {cause.strerror or cause} "
                f"({where or 'no file named'}). {what_to_do(cause)}; the models index is unchanged, and a partial "
                "download is kept and resumed."
            ) from error


def _say(message: str) -> None:
    print(message, file=sys.stderr)
