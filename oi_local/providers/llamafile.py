"""Llamafile: a single executable that carries a model and its own server (Mozilla-Ocho/llamafile)."""

from __future__ import annotations

import platform

from oi_local.endpoint import Endpoint
from oi_local.machine.paths import AppPaths
from oi_local.providers import builtin
from oi_local.providers.base import ModelChoice, ProviderStatus

NAME = "llamafile"
TITLE = "Llamafile"
FORMAT = "llamafile"

WINDOWS_NOTE = """On Windows a llamafile larger than 4 GB cannot be executed; pick a smaller one
or use llama.cpp (built in) with the GGUF version of the model."""


def detect(*, paths: AppPaths | None = None, **_: object) -> ProviderStatus:
    count = 0
    if paths is not None and paths.models.is_dir():
        count = sum(1 for _ in paths.models.rglob("*.llamafile"))
    models = f" · {count} llamafile(s) on disk" if count else " · downloads a llamafile and runs it"
    guidance = WINDOWS_NOTE if platform.system() == "Windows" else ""
    return ProviderStatus(True, True, f"built in{models}", guidance)


def list_models(*, paths: AppPaths, hw, entries=None, **_: object) -> list[ModelChoice]:
    return builtin.list_models(FORMAT, paths=paths, hw=hw, entries=entries)


def prepare(model: str, *, paths: AppPaths, **kw: object) -> tuple[Endpoint, object]:
    return builtin.prepare(model, FORMAT, provider=NAME, paths=paths, **kw)
