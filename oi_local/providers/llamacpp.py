"""llama.cpp, built in: GGUF models from the models folder served by llama-cpp-python's server."""

from __future__ import annotations

import importlib.util

from oi_local.endpoint import Endpoint
from oi_local.machine.paths import AppPaths
from oi_local.providers import builtin
from oi_local.providers.base import ModelChoice, ProviderStatus

NAME = "llamacpp"
TITLE = "llama.cpp (built in, GGUF)"
FORMAT = "gguf"

NOT_INSTALLED = """llama-cpp-python is not installed in this environment, so the built-in llama.cpp cannot run.
Install it with `pip install "llama-cpp-python[server]"` (on CPUs without AMX support in the sandbox:
CMAKE_ARGS="-DGGML_NATIVE=OFF"), or pick another provider."""


def detect(*, paths: AppPaths | None = None, **_: object) -> ProviderStatus:
    if importlib.util.find_spec("llama_cpp") is None:
        return ProviderStatus(False, False, "not installed (llama-cpp-python missing)", NOT_INSTALLED)
    count = _count_on_disk(paths)
    models = f" · {count} GGUF model(s) on disk" if count else ""
    # Built in: ready whenever a model is chosen, so it counts as running.
    return ProviderStatus(True, True, f"built in{models}")


def _count_on_disk(paths: AppPaths | None) -> int:
    if paths is None or not paths.models.is_dir():
        return 0
    return sum(1 for _ in paths.models.rglob(f"*{builtin.SUFFIX[FORMAT]}"))


def list_models(*, paths: AppPaths, hw, entries=None, **_: object) -> list[ModelChoice]:
    return builtin.list_models(FORMAT, paths=paths, hw=hw, entries=entries)


def prepare(model: str, *, paths: AppPaths, **kw: object) -> tuple[Endpoint, object]:
    return builtin.prepare(model, FORMAT, provider=NAME, paths=paths, **kw)
