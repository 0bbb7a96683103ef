"""Taking in a model file the user already has, and moving aside a file that is in a download's way.

An import registers the file where it is (it stays the user's: deleting the model only unregisters it),
or puts a copy into the models folder: a copy-on-write clone where the filesystem has one (btrfs, XFS,
APFS: no space, no time), else a plain copy. Never a hard link unasked: the two names would be one file,
and an in-place edit of either would change the other. A hard link is made only when the user asks for
it (`--link`) and the file is read-only, so that neither side can be edited in place by accident.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from oi_local.errors import OiLocalError
from oi_local.models.catalog import CatalogEntry

QUARANTINE = ".quarantine"
FORMATS = {".gguf": "gguf", ".llamafile": "llamafile"}
_WRITE_BITS = 0o222


@dataclass(frozen=True)
class ImportPlan:
    source: Path  # the user's file
    target: Path  # where the model will be: the source itself, or a path in the models folder
    how: str  # "in place" | "copy" (a clone where possible) | "link"
    model_id: str
    format: str
    name: str | None  # from the file's header
    digest: str
    entry: CatalogEntry | None  # the catalog entry with this very sha256


def plan(path: Path, models_dir: Path, catalog: list[CatalogEntry], index: dict[str, dict], *,
         model_id: str | None, copy: bool, link: bool, progress: bool) -> ImportPlan:
    """Check the file and what to do with it; nothing is written yet. Raises OiLocalError."""
    from oi_local.models.download import hash_file

    path = Path(path).expanduser().absolute()
    if not path.is_file():
        raise OiLocalError(f"{path} is not a file. Give the path of an existing .gguf or .llamafile.")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise OiLocalError(f"{path.name} is neither a .gguf nor a .llamafile; only those can be imported.")
    if copy and link:
        raise OiLocalError("Import with --copy or with --link, not both.")
    name = _read_name(path)
    digest = hash_file(path, progress=progress, label=f"hashing {path.name}")
    entry = next((e for e in catalog if e.sha256 and e.sha256 == digest), None)
    model_id = model_id or (entry.id if entry and entry.id not in index else slug(path.stem))
    check_model_id(model_id)
    how = "copy" if copy else "link" if link else "in place"
    target = models_dir / path.name if how != "in place" else path
    existing = index.get(model_id)
    if existing is not None and Path(existing["path"]) not in (path, target):
        raise OiLocalError(f"A model with id {model_id!r} is already registered ({existing['path']}). "
                           "Choose another id with --id, or delete that one first.")
    if how != "in place" and target.exists() and target != path:
        raise OiLocalError(f"{target} already exists; import without --{how}, or remove that file first.")
    if how == "link" and os.stat(path).st_mode & _WRITE_BITS:
        raise OiLocalError(
            f"{path} can be written to, so a hard link would let an edit of either name change the stored model. "
            f"Make it read-only first (`chmod a-w {path}`) and import with --link again, or import with --copy "
            "(a copy-on-write clone where the filesystem can make one)."
        )
    if how == "copy":
        from oi_local.models.sources import free_bytes

        if path.stat().st_size > free_bytes(models_dir):
            raise OiLocalError(f"Not enough disk space to copy {path.name} into {models_dir}; "
                               "import it without --copy to register it where it is.")
    return ImportPlan(path, target, how, model_id, fmt, name, digest, entry)


def place(plan: ImportPlan, models_dir: Path, *, progress: bool) -> str:
    """Put the file where the plan says; returns how: "in place", "reflink", "copy" or "link"."""
    if plan.how == "in place" or plan.target == plan.source:
        return "in place"
    if plan.how == "link":
        try:
            os.link(plan.source, plan.target)
        except OSError as error:
            raise OiLocalError(
                f"{plan.source} could not be hard-linked into {models_dir} ({error.strerror or error}; a hard link "
                "needs both on one filesystem). Import it with --copy instead, or where it is (no option)."
            ) from error
        return "link"
    from oi_local.files import clone_file
    from oi_local.models.download import progress_bar

    with progress_bar(f"copying {plan.source.name}", plan.source.stat().st_size, enabled=progress) as advance:
        return clone_file(plan.source, plan.target, on_bytes=advance)


def quarantine(models_dir: Path, path: Path) -> Path:
    """Move a file out of the way into .quarantine/ (never deleted: it may be the user's)."""
    folder = models_dir / QUARANTINE
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    moved = folder / f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}"
    os.replace(path, moved)
    return moved


def _read_name(path: Path) -> str | None:
    # reads the header (of a .gguf, or of the GGUF inside a .llamafile); raises OiLocalError naming the
    # file when it is not one, so nothing unusable gets registered
    from oi_local.models import gguf_info

    return gguf_info.read(path).name


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.") or "model"


def check_model_id(model_id: str) -> None:
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", model_id):
        raise OiLocalError(f"{model_id!r} is not a usable model id: use letters, digits, '.', '_' and '-'.")


def check_file_name(name: str) -> None:
    if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        raise OiLocalError(f"The catalog file name {name!r} is not a plain file name; fix the catalog entry.")
