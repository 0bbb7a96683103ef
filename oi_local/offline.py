"""Offline means offline: the environment that keeps every library on this side of the loopback."""

from __future__ import annotations

import os
from collections.abc import MutableMapping

# Read by libraries at import or first use; set before any of them is imported.
OFFLINE_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # litellm: the bundled cost map, not a fetch from GitHub
    "LITELLM_TELEMETRY": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "DO_NOT_TRACK": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
}


def apply(environ: MutableMapping[str, str] | None = None) -> None:
    """Set the offline environment (values the user set explicitly are kept)."""
    env = os.environ if environ is None else environ
    for key, value in OFFLINE_ENV.items():
        env.setdefault(key, value)


def model_on_disk(environ: MutableMapping[str, str] | None = None) -> None:
    """From here on the hub is never contacted (huggingface_hub honours HF_HUB_OFFLINE)."""
    env = os.environ if environ is None else environ
    env["HF_HUB_OFFLINE"] = "1"
