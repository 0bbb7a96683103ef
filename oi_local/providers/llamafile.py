"""Llamafile: a single executable that carries a model and its own server (Mozilla-Ocho/llamafile)."""

from __future__ import annotations

import platform

from oi_local.providers.base import ProviderContext, ProviderStatus
from oi_local.providers.builtin import BuiltinProvider, Resolved

WINDOWS_NOTE = """On Windows a llamafile larger than 4 GB cannot be executed; pick a smaller one
or use llama.cpp (built in) with the GGUF version of the model."""


class Llamafile(BuiltinProvider):
    name = "llamafile"
    title = "Llamafile"
    format = "llamafile"

    def detect(self, ctx: ProviderContext) -> ProviderStatus:
        count = self.count_on_disk(ctx)
        models = f" · {count} llamafile(s) on disk" if count else " · downloads a llamafile and runs it"
        guidance = WINDOWS_NOTE if platform.system() == "Windows" else ""
        return ProviderStatus(True, True, f"built in{models}", guidance)

    def run(self, resolved: Resolved, fit, options: dict):
        from oi_local.serving.runners import llamafile

        # executed only when trusted: its sha256 is from the catalog or pinned by the user (the hub's ETag alone
        # is not enough), or the user named this very file and the store does not hold it
        return llamafile.start(resolved.path, fit, trusted=resolved.trusted, **options)


PROVIDER = Llamafile()
