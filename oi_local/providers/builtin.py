"""What the two built-in providers share (llama.cpp for GGUF files, Llamafile): the models folder, the
catalog with fit, and resolve → fit → runner → Endpoint. `oi-local serve` runs the same steps."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from oi_local import env
from oi_local.errors import OiLocalError, did_you_mean
from oi_local.files import format_bytes
from oi_local.machine.paths import AppPaths, app_paths
from oi_local.providers.base import ModelChoice, Provider, ProviderContext, Served

if TYPE_CHECKING:
    from oi_local.models.fit import Fit

SUFFIX = {"gguf": ".gguf", "llamafile": ".llamafile"}
MIN_CONTEXT = 256  # below this no chat (system message, question, answer) fits


@dataclass(frozen=True)
class Resolved:
    path: Path
    model_id: str
    format: str  # "gguf" | "llamafile"
    entry: object | None  # CatalogEntry
    stored: bool  # True: the file is in the models folder (or was imported into it)
    verified: bool  # its sha256 matched, or the user named or imported this very file
    trusted: bool = False  # may be run as a program: its sha256 is from the catalog or pinned by the user, or
    # it is a file the user named that the store does not hold


def load_catalog(paths: AppPaths):
    from oi_local.models import catalog

    return catalog.load(paths.user_catalog if paths.user_catalog.exists() else None)


def store_for(paths: AppPaths, entries, *, offline: bool = False):
    from oi_local.models.store import ModelStore

    return ModelStore(paths.models, entries, offline=True if offline else None)


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
            label = f"{entry.name}  ({note}{format_bytes(entry.size_bytes)} download, context {estimate.n_ctx}{estimate.speed_suffix})"
        else:
            label = f"{entry.name}  (does not fit: {estimate.reason})"
        out.append(
            ModelChoice(
                id=entry.id, label=label, on_disk=False, fits=estimate.fits, reason=estimate.reason,
                size_bytes=entry.size_bytes, context_length=estimate.n_ctx, recommended=entry.recommended,
            )
        )
    return out


def format_of(path: Path) -> str:
    return "llamafile" if path.name.endswith(SUFFIX["llamafile"]) else "gguf"


def resolve(model: str, ctx: ProviderContext, fmt: str | None = None, *, download: bool = True) -> Resolved:
    """A catalog id, a stored model id, or a path to a file → a file on disk (downloading a catalog model).

    `fmt` None (`oi-local serve`) takes the model in whichever format it is. A stored file is hashed in full
    on its first use and whenever it changed (always with ctx.verify); ctx.offline downloads nothing."""
    paths = ctx.paths or app_paths()
    entries = list(ctx.catalog) if ctx.catalog is not None else load_catalog(paths)
    candidate = Path(model).expanduser()
    suffixes = tuple(SUFFIX.values()) if fmt is None else (SUFFIX[fmt],)
    store = store_for(paths, entries, offline=ctx.offline)
    if os.sep in model or model.endswith(suffixes) or candidate.exists():
        if not candidate.is_file():
            raise OiLocalError(f"There is no file at {candidate}. Check the path, or pass a catalog id instead.")
        file_format = fmt or format_of(candidate)
        # a file the store holds keeps the store's verdict; one it does not know is the user's own choice
        trusted = store.trusted_path(candidate, progress=ctx.progress, verify=ctx.verify)
        resolved = Resolved(candidate.resolve(), candidate.name.removesuffix(SUFFIX[file_format]), file_format, None,
                            False, True, trusted)
    else:
        resolved = _from_store(model, fmt, store, entries, progress=ctx.progress, download=download, verify=ctx.verify)
    # The model is on disk: from here on nothing may reach the hub.
    env.set_hub_offline()
    return resolved


def _from_store(model: str, fmt: str | None, store, entries, *, progress: bool, download: bool,
                verify: bool) -> Resolved:
    from oi_local.models import catalog

    stored = store.get(model)
    if stored is not None:
        _check_format(model, stored.format, fmt)
        stored = store.checked(model, progress=progress, verify=verify, repair=download)  # hashed when needed
        if stored.verified is False or not stored.path.is_file():
            again = (f"download it again with `oi-local models download {stored.entry.id}`"
                     if stored.entry is not None else "import the right file again")
            raise OiLocalError(
                f"The stored file for '{model}' ({stored.path}) is missing or does not match its sha256, so it is "
                f"not used. Delete it with `oi-local models delete {model}` and {again}."
            )
        verified = stored.verified is True or stored.entry is None
        return Resolved(stored.path, stored.id, stored.format, stored.entry, True, verified, stored.trusted)
    entry = catalog.find(entries, model)
    if entry is not None:
        _check_format(model, entry.format, fmt)
        if not download:
            raise OiLocalError(f"'{model}' is not on disk yet. Download it with `oi-local models download {model}`.")
        stored = store.ensure(entry, progress=progress, verify=verify)
        return Resolved(stored.path, stored.id, entry.format, stored.entry, True, stored.verified is True,
                        stored.trusted)
    formats = SUFFIX if fmt is None else {fmt: SUFFIX[fmt]}
    known = sorted({m.id for m in store.list() if m.format in formats} | {e.id for e in entries if e.format in formats})
    raise OiLocalError(
        f"No model called '{model}' on disk or in the catalog.{did_you_mean(model, known)} Pass a catalog id "
        f"(one of: {', '.join(known) or 'none'}), a model you imported, or the path to a "
        f"{' or '.join(formats.values())} file."
    )


def _check_format(model: str, found: str, wanted: str | None) -> None:
    if wanted is None or found == wanted:
        return
    from oi_local import providers

    raise OiLocalError(
        f"'{model}' is a {found} model; use it with --provider {providers.serving(found).name}, "
        f"or pick a {wanted} model (`oi-local models list --all`)."
    )


def import_file(path: str, *, paths: AppPaths, entries) -> str:
    """Register a file the user already has; returns the store's id for it."""
    candidate = Path(path).expanduser()
    if not candidate.is_file():
        raise OiLocalError(f"There is no file at {candidate}. Check the path and try again.")
    return store_for(paths, entries).import_file(candidate).id


class BuiltinProvider(Provider):
    """A provider this program serves itself: model files from the store, a runner from serving/runners."""

    builtin = True
    format = "gguf"

    @property
    def suffix(self) -> str:
        return SUFFIX[self.format]

    def count_on_disk(self, ctx: ProviderContext) -> int:
        if ctx.paths is None or not ctx.paths.models.is_dir():
            return 0
        return sum(1 for _ in ctx.paths.models.rglob(f"*{self.suffix}"))

    def catalog(self, ctx: ProviderContext) -> list:
        return list(ctx.catalog) if ctx.catalog is not None else load_catalog(self._paths(ctx))

    def list_models(self, ctx: ProviderContext) -> list[ModelChoice]:
        return list_models(self.format, paths=self._paths(ctx), hw=ctx.hw, entries=self.catalog(ctx))

    def import_file(self, path: str, ctx: ProviderContext) -> str:
        return import_file(path, paths=self._paths(ctx), entries=self.catalog(ctx))

    def resolve(self, model: str, ctx: ProviderContext) -> Resolved:
        return resolve(model, ctx, self.format)

    def fit(self, resolved: Resolved, ctx: ProviderContext) -> Fit:
        """The fit for this machine from the file's header, at ctx's context window and GPU layers if given."""
        from oi_local.models import fit as fitting

        if ctx.context_window is not None and ctx.context_window < MIN_CONTEXT:
            raise OiLocalError(
                f"A context window of {ctx.context_window} tokens is too small; use at least {MIN_CONTEXT}."
            )
        hw = ctx.hw
        if hw is None:
            from oi_local.machine import hardware

            hw = hardware.probe(self._paths(ctx).models)
        options: dict = {"n_ctx": ctx.context_window} if ctx.context_window else {}
        if resolved.format == "llamafile":
            options["flash_attn"] = False  # its runner passes llamafile no flash-attention flag
        estimate = fitting.fit_file(resolved.path, hw, resolved.entry, **options)
        if ctx.serve.n_gpu_layers is not None:
            estimate = dataclasses.replace(estimate, n_gpu_layers=ctx.serve.n_gpu_layers,
                                           flash_attn=estimate.flash_attn and ctx.serve.n_gpu_layers == 0)
        return estimate

    def serve(self, resolved: Resolved, fit: Fit, ctx: ProviderContext):
        """Start (or reuse) the server for a resolved model; returns its ManagedServer."""
        paths = self._paths(ctx)
        options = dict(
            paths=paths, model_id=resolved.model_id, reuse=not ctx.fresh_server, host=ctx.serve.host,
            port=ctx.serve.port, api_key=ctx.serve.api_key,
        )
        server = self.run(resolved, fit, options)
        if resolved.stored:
            try:
                store_for(paths, self.catalog(ctx)).mark_used(resolved.model_id)
            except (OiLocalError, OSError):
                pass  # bookkeeping only
        return server

    def run(self, resolved: Resolved, fit: Fit, options: dict):
        """The runner's start() with the options serve() gathered."""
        raise NotImplementedError

    def prepare(self, model: str, ctx: ProviderContext) -> Served:
        """resolve → fit → runner → Endpoint; a model that does not fit is refused before anything starts."""
        paths = self._paths(ctx).ensure()
        ctx = dataclasses.replace(ctx, paths=paths, catalog=tuple(self.catalog(ctx)))
        resolved = self.resolve(model, ctx)
        estimate = self.fit(resolved, ctx)
        if not estimate.fits:
            raise OiLocalError(
                f"{resolved.model_id} does not fit this machine: {estimate.reason}. Pick a smaller model "
                "(`interpreter --local` lists those that fit) or a shorter context with --context_window."
            )
        server = self.serve(resolved, estimate, ctx)
        return Served(dataclasses.replace(server.endpoint, context_source="the model's GGUF header, fit to this machine"),
                      server)

    @staticmethod
    def _paths(ctx: ProviderContext) -> AppPaths:
        return ctx.paths or app_paths()
