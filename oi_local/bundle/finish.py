"""The part of a bundle's install that the installed oi_local does: `python -m oi_local.bundle.finish BUNDLE_DIR`.

1. The packed models' catalog entries join the user catalog (entries already there are never replaced).
2. Each model is imported into the store (a copy, through the store's own import, which hashes it) and
   must come out with the sha256 the manifest says.
3. <config>/offline.json makes offline the default (oi_local.env.hub_offline): nothing is downloaded
   unless OI_LOCAL_OFFLINE=0.
Each step sees what a previous, interrupted run did and does only the rest.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from oi_local.bundle import manifest as mf
from oi_local.bundle.manifest import BundleError, Manifest, ModelRecord
from oi_local.files import sha256_file, write_atomic, write_json_atomic
from oi_local.machine.paths import AppPaths, app_paths

CATALOG_HEADER = (
    "# The user catalog: entries here add to (or override by id) the catalog oi_local ships.\n"
    "# Entries marked below came with an offline bundle.\n"
)


@dataclass(frozen=True)
class CatalogMerge:
    added: tuple[str, ...]
    kept: tuple[str, ...]  # ids the user catalog already had (left as they are)
    shipped: tuple[str, ...]  # ids the shipped catalog already describes the same way


def main(argv: list[str]) -> int:
    from oi_local.errors import OiLocalError

    if len(argv) != 1:
        print("usage: python -m oi_local.bundle.finish BUNDLE_DIR", file=sys.stderr)
        return 2
    try:
        finish(Path(argv[0]), app_paths().ensure())
    except OiLocalError as error:
        print(f"Error: {error}", file=sys.stderr)
        return error.exit_code
    return 0


def finish(bundle: Path, paths: AppPaths) -> None:
    manifest = mf.load(bundle)
    merge = merge_catalog(bundle, paths)
    for model_id in merge.added:
        _say(f"catalog: added {model_id} to {paths.user_catalog}")
    for model_id in merge.kept:
        _say(f"catalog: {model_id} is in {paths.user_catalog} already; your entry is kept as it is")
    for model in manifest.models:
        _say(import_model(bundle, model, paths))
    write_offline_default(paths, manifest)
    _say(f"offline is now the default ({paths.offline_default}; delete it or set OI_LOCAL_OFFLINE=0 to download again)")


# ---- catalog ----------------------------------------------------------------------------------------------------


def merge_catalog(bundle: Path, paths: AppPaths) -> CatalogMerge:
    from oi_local.models import catalog

    source = bundle / mf.CATALOG
    if not source.is_file():
        return CatalogMerge((), (), ())
    entries = json.loads(source.read_text(encoding="utf-8")).get("models", [])
    shipped = {e.id: e for e in catalog.load_file(catalog.SHIPPED_CATALOG)}
    user_path = paths.user_catalog
    user_ids = {e.id for e in catalog.load_file(user_path, allow_empty=True)} if user_path.exists() else set()
    to_add, kept, same = [], [], []
    for raw in entries:
        model_id = raw.get("id")
        if model_id in user_ids:
            kept.append(model_id)
        elif model_id in shipped and shipped[model_id].sha256 and shipped[model_id].sha256 == raw.get("sha256"):
            same.append(model_id)
        else:
            to_add.append(raw)
    if to_add:
        _append_entries(user_path, to_add)
        catalog.load(user_path)  # raises CatalogError (file, line, field) if the result is not a valid catalog
    return CatalogMerge(tuple(e["id"] for e in to_add), tuple(kept), tuple(same))


def _append_entries(path: Path, entries: list[dict]) -> None:
    """Add entries to the user catalog, keeping its text (and comments) when it can simply be extended."""
    import yaml

    stamp = time.strftime("%Y-%m-%d")
    block = yaml.safe_dump(entries, sort_keys=False, allow_unicode=True, width=1000)
    if not path.exists():
        write_atomic(path, CATALOG_HEADER + "version: 1\nmodels:\n" + _indent(block, 2, stamp))
        return
    text = path.read_text(encoding="utf-8")
    indent = _models_sequence_indent(text)
    if indent is not None:
        write_atomic(path, text + ("" if text.endswith("\n") else "\n") + _indent(block, indent, stamp))
        return
    # not a simple "models:" list at the end: write the merged catalog, keeping the old file beside it
    document = yaml.safe_load(text) or {}
    backup = path.with_name(f"{path.name}.before-bundle-{time.strftime('%Y%m%d-%H%M%S')}")
    write_atomic(backup, text)
    models = list(document.get("models") or []) + entries
    write_atomic(path, CATALOG_HEADER + f"# (rewritten by an offline bundle's install; the previous file is {backup.name})\n"
                 + yaml.safe_dump({**document, "models": models}, sort_keys=False, allow_unicode=True, width=1000))


def _models_sequence_indent(text: str) -> int | None:
    """The column of `models:`'s list items when that list is the document's last value (block style)."""
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    if not isinstance(node, yaml.MappingNode) or not node.value:
        return None
    key, value = node.value[-1]
    if getattr(key, "value", None) != "models" or not isinstance(value, yaml.SequenceNode):
        return None
    if value.flow_style or not value.value:
        return None
    return value.start_mark.column


def _indent(block: str, columns: int, stamp: str) -> str:
    pad = " " * columns
    lines = [f"{pad}# from an offline bundle, installed {stamp}"]
    lines += [pad + line if line else line for line in block.splitlines()]
    return "\n".join(lines) + "\n"


# ---- models -----------------------------------------------------------------------------------------------------


def import_model(bundle: Path, model: ModelRecord, paths: AppPaths) -> str:
    from oi_local.models import catalog
    from oi_local.models.store import ModelStore

    store = ModelStore(paths.models, catalog.load(paths.user_catalog))
    existing = store.get(model.id)
    if existing is not None and not existing.path.is_file():
        store.delete(model.id)  # a record whose file is gone: only the record goes
        existing = None
    if existing is not None:
        if existing.sha256 == model.sha256:
            return f"model {model.id}: already in the models folder ({existing.path})"
        return (f"model {model.id}: the models folder has another file under that id ({existing.path}); it is "
                "kept as it is and the bundle's copy was not imported (`oi-local models delete "
                f"{model.id}`, then run install.sh again, to take the bundle's)")
    source = bundle / model.file
    in_place = paths.models / source.name
    if in_place.is_file():  # copied by an interrupted run (the copy is atomic), but not yet registered
        if sha256_file(in_place).hexdigest() != model.sha256:
            raise BundleError(f"{in_place} is in the way of the model {model.id} and is a different file. Move it "
                              "away (it is left untouched) and run the same command again.")
        stored = store.import_file(in_place, model_id=model.id, progress=False)
    else:
        stored = store.import_file(source, model_id=model.id, copy=True, progress=sys.stderr.isatty())
    if stored.sha256 != model.sha256 or not _inside(stored.path, paths.models):
        raise BundleError(f"The model {model.id} came out of the import as {stored.path} with sha256 "
                          f"{stored.sha256}, not {model.sha256}. Nothing else was changed; run the same command again.")
    return f"model {model.id}: imported into {stored.path} (sha256 checked)"


def _inside(path: Path, folder: Path) -> bool:
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
        return True
    except ValueError:
        return False


# ---- the offline default ----------------------------------------------------------------------------------------


def write_offline_default(paths: AppPaths, manifest: Manifest) -> None:
    write_json_atomic(paths.offline_default, {
        "offline": True,
        "written_by": f"the install of an offline bundle made {manifest.created}",
        "installed": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "undo": "delete this file, or set OI_LOCAL_OFFLINE=0 for one command",
    })


def _say(message: str) -> None:
    print(f"oi_local bundle: {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
