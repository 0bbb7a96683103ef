"""llama.cpp, built in: GGUF models from the models folder served by llama-cpp-python's server."""

from __future__ import annotations

import importlib.util

from oi_local.providers.base import ProviderContext, ProviderStatus
from oi_local.providers.builtin import BuiltinProvider, Resolved

NOT_INSTALLED = """llama-cpp-python is not installed in this environment, so the built-in llama.cpp cannot run.
Install it with `pip install "llama-cpp-python[server]"` (on CPUs without AMX support in the sandbox:
CMAKE_ARGS="-DGGML_NATIVE=OFF"), or pick another provider."""


class LlamaCpp(BuiltinProvider):
    name = "llamacpp"
    title = "llama.cpp (built in, GGUF)"
    format = "gguf"

    def detect(self, ctx: ProviderContext) -> ProviderStatus:
        if importlib.util.find_spec("llama_cpp") is None:
            return ProviderStatus(False, False, "not installed (llama-cpp-python missing)", NOT_INSTALLED)
        count = self.count_on_disk(ctx)
        models = f" · {count} GGUF model(s) on disk" if count else ""
        # Built in: ready whenever a model is chosen, so it counts as running.
        return ProviderStatus(True, True, f"built in{models}")

    def run(self, resolved: Resolved, fit, options: dict):
        from oi_local.serving.runners import llamacpp

        return llamacpp.start(resolved.path, fit, **options)


PROVIDER = LlamaCpp()
