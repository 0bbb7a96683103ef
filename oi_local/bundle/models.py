"""The models a bundle carries: files from the store (with the sha256 they must still have) and their catalog entries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from oi_local.bundle.manifest import BundleError
from oi_local.machine.paths import AppPaths


@dataclass(frozen=True)
class ModelToPack:
    id: str
    name: str
    format: str
    source: Path
    size: int
    sha256: str  # what the file must hash to while it is packed (the store's verified hash)
    catalog_entry: dict | None  # the entry as written in its catalog file (a user catalog's included)


def select(model_ids: list[str], paths: AppPaths) -> list[ModelToPack]:
    from oi_local.models import catalog
    from oi_local.models.store import ModelStore

    entries = catalog.load(paths.user_catalog)
    store = ModelStore(paths.models, entries)
    stored = store.list()
    chosen: list[ModelToPack] = []
    for model_id in dict.fromkeys(model_ids):
        model = store.get(model_id) or next((m for m in stored if m.entry is not None and m.entry.id == model_id), None)
        if model is None:
            entry = catalog.find(entries, model_id)
            todo = (f"download it first with `oi-local models download {model_id}`" if entry is not None
                    else "`oi-local models list` shows the ones there are (or import a file with `oi-local models import PATH`)")
            raise BundleError(f"{model_id} is not in the models folder ({paths.models}), so it cannot be packed: {todo}, "
                              "then make the bundle again.")
        if not model.path.is_file():
            raise BundleError(f"The file of {model.id} is missing ({model.path}); download it again with "
                              f"`oi-local models download {model.id}`, then make the bundle again.")
        if model.verified is False or not model.sha256:
            raise BundleError(f"{model.id} ({model.path}) failed its sha256 check in the models folder, so it is not "
                              f"packed. Run `oi-local models verify {model.id}`, and download it again if it is damaged.")
        entry = model.entry
        if entry is not None and entry.sha256 and entry.sha256 != model.sha256:
            raise BundleError(f"{model.id}: the models folder records sha256 {model.sha256}, but the catalog pins "
                              f"{entry.sha256}; it is not packed. Run `oi-local models verify {model.id}`.")
        chosen.append(ModelToPack(model.id, model.name, model.format, model.path, model.path.stat().st_size,
                                  model.sha256, _raw_entry(entry, model.sha256, model.path.stat().st_size)))
    return chosen


def _raw_entry(entry, sha256: str, size: int) -> dict | None:
    """The entry as its catalog file spells it (so the target reads exactly what this machine reads),
    with the verified sha256 and exact size filled in where the catalog did not know them."""
    if entry is None or entry.origin is None:
        return None
    import yaml

    try:
        document = yaml.safe_load(Path(entry.origin).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    raw = next((m for m in document.get("models") or [] if isinstance(m, dict) and m.get("id") == entry.id), None)
    if raw is None:
        return None
    raw = dict(raw)
    if raw.get("sha256") in (None, "unknown"):
        raw["sha256"] = sha256
        raw["size_bytes"] = size
        raw["size_exact"] = True
    return raw
