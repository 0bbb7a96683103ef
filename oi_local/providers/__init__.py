"""The providers: one Provider instance per product, in menu order. Every list of providers is derived from here
(the --provider choices, the first menu, the missing-flags text, the titles in the summary line).

The registry names the module that holds each provider's instance (`PROVIDER`) and imports it only when the
provider itself is asked for, so that `interpreter --help` (which only needs the names) imports none of them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from oi_local.providers.base import Provider

# Menu order: the built-in ones first (they always work), then apps the user may run, then any URL.
# A value is the module whose PROVIDER it is, or (for a provider added at run time) the instance itself.
REGISTRY: dict[str, str | Provider] = {
    "llamacpp": "oi_local.providers.llamacpp",
    "llamafile": "oi_local.providers.llamafile",
    "ollama": "oi_local.providers.ollama",
    "lmstudio": "oi_local.providers.lmstudio",
    "jan": "oi_local.providers.jan",
    "custom": "oi_local.providers.custom",
}
DEFAULT = "llamacpp"  # preselected when nothing else is running, and local_setup's default


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get(name: str) -> Provider:
    source = REGISTRY.get(name)
    if source is None:
        from oi_local.errors import OiLocalError

        raise OiLocalError(f"Unknown provider '{name}'. Use one of: {', '.join(REGISTRY)}.")
    return importlib.import_module(source).PROVIDER if isinstance(source, str) else source


def all_providers() -> tuple[Provider, ...]:
    return tuple(get(name) for name in REGISTRY)


def title(name: str) -> str:
    """The provider's title; the name itself for one that is not registered (an Endpoint from elsewhere)."""
    return get(name).title if name in REGISTRY else name


def serving(fmt: str) -> Provider:
    """The built-in provider that serves model files of this format."""
    found = next((p for p in all_providers() if p.builtin and p.format == fmt), None)
    if found is None:
        from oi_local.errors import OiLocalError

        raise OiLocalError(f"No built-in provider serves {fmt} files; use a .gguf or .llamafile model.")
    return found
