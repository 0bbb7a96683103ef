"""One module per provider; each has NAME, TITLE, detect(), list_models() and prepare().

Modules are imported by name when needed, so that importing this package costs nothing.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# Menu order: the built-in ones first (they always work), then apps the user may run, then any URL.
ORDER = ("llamacpp", "llamafile", "ollama", "lmstudio", "jan", "custom")
TITLES = {
    "llamacpp": "llama.cpp (built in, GGUF)",
    "llamafile": "Llamafile",
    "ollama": "Ollama",
    "lmstudio": "LM Studio",
    "jan": "Jan",
    "custom": "Custom OpenAI-compatible URL",
}


def get(name: str) -> ModuleType:
    if name not in ORDER:
        from oi_local.errors import OiLocalError

        raise OiLocalError(f"Unknown provider '{name}'. Use one of: {', '.join(ORDER)}.")
    return importlib.import_module(f"oi_local.providers.{name}")
