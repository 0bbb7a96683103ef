"""What the two built-in providers share (llama.cpp for GGUF files, Llamafile): the models folder, the
catalog with fit, and store → fit → runner → Endpoint."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from oi_local import env
from oi_local.endpoint import Endpoint
from oi_local.errors import OiLocalError
from oi_local.files import format_bytes
from oi_local.machine.paths import AppPaths
from oi_local.providers.base import ModelChoice

SUFFIX = {"gguf": ".gguf", "llamafile": ".llamafile"}


@dataclass(frozen=True)
class Resolved:
    path: Path
    model_id: str
    entry: object | None  # CatalogEntry
    stored: bool  # True: the file is in the models folder (or was imported into it)
    verified: bool  # its sha256 matched, or the user named or imported this very file


def load_catalog(paths: AppPaths):
    from oi_local.models import catalog

    return catalog.load(paths.user_catalog if paths.user_catalog.exists() else None)


def store_for(paths: AppPaths, entries):
    from oi_local.models.store import ModelStore

    return ModelStore(paths.models, entries)


def list_models(fmt: str, *, paths: AppPaths, hw, entries=None) -> list[ModelChoice]:
    """Models on disk first, then catalog models of this format: fitting (recommended first), then the rest."""
    from oi_local.models import fit as fitting

    entries = load_catalog(paths) if entries is None else entries
    on_disk = [m for m in store_for(paths, entries).list() if m.format == fmt]
    out = []
    for model in sorted(on_disk, key=lambda m: -(m.last_used or 0)):
        try:
            estimate = fitting.fit_file(model.path, hw, model.entry)
            fits, reason = estimate.fits, estimate.reason
        except OiLocalError as error:
            fits, reason = False, str(error).split(". ")[0]
        label = f"{model.name}  ({format_bytes(model.size_bytes)}, on disk{'' if fits else ', does not fit: ' + reason})"
        out.append(ModelChoice(id=model.id, label=label, on_disk=True, fits=fits, reason=reason, size_bytes=model.size_bytes))
    have = {m.id for m in on_disk}
    for entry, estimate in fitting.rank([e for e in entries if e.format == fmt and e.id not in have], hw):
        note = "recommended, " if entry.recommended else ""
        if estimate.fits:
            label = f"{entry.name}  ({note}{format_bytes(entry.size_bytes)} download, context {estimate.n_ctx})"
        else:
            label = f"{entry.name}  (does not fit: {estimate.reason})"
        out.append(
            ModelChoice(
                id=entry.id, label=label, on_disk=False, fits=estimate.fits, reason=estimate.reason,
                size_bytes=entry.size_bytes, context_length=estimate.n_ctx, recommended=entry.recommended,
            )
        )
    return out


def resolve(model: str, fmt: str, *, paths: AppPaths, entries, progress: bool = True, download: bool = True) -> Resolved:
    """A catalog id, a stored model id, or a path to a file → a file on disk (downloading a catalog model)."""
    from oi_local.models import catalog

    candidate = Path(model).expanduser()
    looks_like_path = os.sep in model or model.endswith(SUFFIX[fmt]) or candidate.exists()
    store = store_for(paths, entries)
    if not looks_like_path:
        stored = store.get(model)
        if stored is not None and stored.entry is not None and download:
            stored = store.ensure(stored.entry, progress=progress)  # re-checks the file before it is used
        if stored is not None:
            if stored.verified is False or not stored.path.is_file():
                raise OiLocalError(
                    f"The stored file for '{model}' ({stored.path}) is missing or failed its sha256 check. "
                    f"Run `oi-local models verify {model}`, or delete it and download it again."
                )
            return Resolved(stored.path, stored.id, stored.entry, True, stored.verified is True or stored.entry is None)
        entry = catalog.find(entries, model)
        if entry is not None:
            if entry.format != fmt:
                other = "llamafile" if entry.format == "llamafile" else "llamacpp"
                raise OiLocalError(
                    f"'{model}' is a {entry.format} model; use it with --provider {other}, "
                    f"or pick a {fmt} model (`oi-local models list --all`)."
                )
            if not download:
                raise OiLocalError(f"'{model}' is not on disk yet. Download it with `oi-local models download {model}`.")
            stored = store.ensure(entry, progress=progress)
            return Resolved(stored.path, stored.id, stored.entry, True, stored.verified is True)
        known = sorted({m.id for m in store.list() if m.format == fmt} | {e.id for e in entries if e.format == fmt})
        raise OiLocalError(
            f"No model called '{model}' on disk or in the catalog. Pass a catalog id (one of: "
            f"{', '.join(known) or 'none'}), a model you imported, or the path to a {SUFFIX[fmt]} file."
        )
    if not candidate.is_file():
        raise OiLocalError(f"There is no file at {candidate}. Check the path, or pass a catalog id instead.")
    return Resolved(candidate.resolve(), candidate.name.removesuffix(SUFFIX[fmt]), None, False, True)


def import_file(path: str, *, paths: AppPaths, entries) -> str:
    """Register a file the user already has; returns the store's id for it."""
    candidate = Path(path).expanduser()
    if not candidate.is_file():
        raise OiLocalError(f"There is no file at {candidate}. Check the path and try again.")
    return store_for(paths, entries).import_file(candidate).id


def prepare(
    model: str,
    fmt: str,
    *,
    provider: str,
    paths: AppPaths,
    hw=None,
    entries=None,
    fresh_server: bool = False,
    progress: bool = True,
    context_window: int | None = None,
    **_: object,
) -> tuple[Endpoint, object]:
    """store → fit → runner → Endpoint. Returns (endpoint, the ManagedServer serving it)."""
    from oi_local.models import fit as fitting

    paths.ensure()
    entries = load_catalog(paths) if entries is None else entries
    resolved = resolve(model, fmt, paths=paths, entries=entries, progress=progress)
    # The model is on disk: from here on nothing may reach the hub.
    env.set_hub_offline()
    if hw is None:
        from oi_local.machine import hardware

        hw = hardware.probe(paths.models)
    kw = {"n_ctx": context_window} if context_window else {}
    estimate = fitting.fit_file(resolved.path, hw, resolved.entry, **kw)
    if not estimate.fits:
        raise OiLocalError(
            f"{resolved.model_id} does not fit this machine: {estimate.reason}. Pick a smaller model "
            "(`interpreter --local` lists those that fit) or a shorter context with --context_window."
        )
    options = {"paths": paths, "model_id": resolved.model_id, "reuse": not fresh_server}
    if provider == "llamafile":
        from oi_local.serving.runners import llamafile

        server = llamafile.start(resolved.path, estimate, verified=resolved.verified, **options)
    else:
        from oi_local.serving.runners import llamacpp

        server = llamacpp.start(resolved.path, estimate, **options)
    if resolved.stored:
        try:
            store_for(paths, entries).mark_used(resolved.model_id)
        except (OiLocalError, OSError):
            pass  # bookkeeping only
    return dataclasses.replace(server.endpoint, context_source="the model's GGUF header, fit to this machine"), server
