"""The provider and model chosen last time, kept in the config folder to preselect them next time."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

FILE_NAME = "last_local_choice.json"


@dataclass(frozen=True)
class LastChoice:
    provider: str
    model: str | None = None
    api_base: str | None = None  # custom URL only; keys are never stored


def load(config_dir: Path) -> LastChoice | None:
    try:
        data = json.loads((config_dir / FILE_NAME).read_text())
        return LastChoice(provider=str(data["provider"]), model=data.get("model"), api_base=data.get("api_base"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(config_dir: Path, choice: LastChoice) -> None:
    """Atomic, so an interrupted write never leaves a broken file."""
    from oi_local.files import FileWriteError, write_json_atomic

    try:
        write_json_atomic(config_dir / FILE_NAME, asdict(choice), indent=None)
    except FileWriteError:
        pass  # remembering is a convenience; never fail a run over it
