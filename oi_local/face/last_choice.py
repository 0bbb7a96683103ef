"""The provider and model chosen last time, kept in the config folder to preselect them next time."""

from __future__ import annotations

import json
import os
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
    try:
        config_dir.mkdir(parents=True, exist_ok=True)
        tmp = config_dir / f".{FILE_NAME}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(asdict(choice)))
        os.replace(tmp, config_dir / FILE_NAME)
    except OSError:
        pass  # remembering is a convenience; never fail a run over it
