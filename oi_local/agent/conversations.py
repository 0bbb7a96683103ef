"""Saved conversations: one JSON file of LMC messages each, written atomically after every turn."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path

from oi_local.errors import OiLocalError


@dataclass(frozen=True)
class SavedConversation:
    path: Path
    title: str  # the first words of the user's first message
    modified: float  # seconds since the epoch
    message_count: int


def new_filename(messages: list[dict], now: dt.datetime | None = None) -> str:
    """`<first words of the first user message>__<date>.json`, safe on every filesystem."""
    now = now or dt.datetime.now()
    first = next(
        (str(m.get("content", "")) for m in messages if m.get("role") == "user" and m.get("type", "message") == "message"),
        "",
    )
    words = re.sub(r"[^A-Za-z0-9]+", "_", " ".join(first.split()[:4])).strip("_")[:25] or "conversation"
    return f"{words}__{now:%B_%d_%Y_%H-%M-%S}.json"


def save(messages: list[dict], path: Path) -> None:
    """Write the conversation to `path` atomically: a crash leaves the old file or the new one, never half."""
    from oi_local.files import write_json_atomic

    write_json_atomic(Path(path), messages, indent=2, fsync=True)


def load(path: Path) -> list[dict]:
    """The messages of a saved conversation; a clear error for a missing or damaged file (left untouched)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OiLocalError(f"There is no saved conversation at {path}. `interpreter --conversations` lists the saved ones.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise OiLocalError(
            f"The saved conversation {path} cannot be read ({error}). The file was left as it is; "
            "pick another conversation or start a new one."
        ) from None
    if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
        raise OiLocalError(
            f"The saved conversation {path} is not a list of messages. The file was left as it is; "
            "pick another conversation or start a new one."
        )
    return data


def _title(messages: list[dict], path: Path) -> str:
    for message in messages:
        if message.get("role") == "user" and message.get("type", "message") == "message":
            text = " ".join(str(message.get("content", "")).split())
            return text[:60] + ("..." if len(text) > 60 else "")
    return path.stem


def list_saved(folder: Path) -> list[SavedConversation]:
    """Every readable saved conversation in `folder`, newest first (damaged files are skipped, not touched)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob("*.json"):
        try:
            messages = load(path)
            modified = path.stat().st_mtime
        except (OiLocalError, OSError):
            continue
        found.append(SavedConversation(path, _title(messages, path), modified, len(messages)))
    found.sort(key=lambda c: c.modified, reverse=True)
    return found
