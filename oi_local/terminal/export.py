"""Export a conversation (LMC messages) as Markdown or as a Jupyter notebook (.ipynb, nbformat 4.5 JSON)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

from oi_local.files import write_atomic

# Cell magics that make a notebook run code of another language in a Python kernel.
CELL_MAGICS = {"shell": "%%bash", "bash": "%%bash", "sh": "%%bash", "zsh": "%%bash", "javascript": "%%javascript", "html": "%%html", "r": "%%R"}
ROLE_TITLES = {"user": "User", "assistant": "Assistant", "computer": "Computer"}


def default_path(suffix: str, *, home: Path | None = None, now: dt.datetime | None = None) -> Path:
    """~/Downloads/oi_local_conversation_<date>_<time><suffix> (Open Interpreter's default folder)."""
    stamp = (now or dt.datetime.now()).strftime("%Y-%m-%d_%H-%M-%S")
    return (home or Path.home()) / "Downloads" / f"oi_local_conversation_{stamp}{suffix}"


def _fence(text: str) -> str:
    """A backtick fence longer than any run of backticks inside the text."""
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def to_markdown(messages: list[dict[str, Any]]) -> str:
    parts: list[str] = []
    last_role = None
    for message in messages:
        role, kind, content = message.get("role"), message.get("type"), message.get("content")
        if role != last_role:
            parts.append(f"## {ROLE_TITLES.get(role, str(role).title())}")
            last_role = role
        if kind == "message":
            parts.append(str(content))
        elif kind == "code":
            fence = _fence(str(content))
            parts.append(f"{fence}{message.get('format') or ''}\n{content}\n{fence}")
        elif kind == "console" and message.get("format") == "output":
            fence = _fence(str(content))
            parts.append(f"{fence}\n{str(content).rstrip()}\n{fence}")
        elif kind == "image":
            if message.get("format") == "path":
                parts.append(f"![image]({content})")
            elif str(message.get("format", "")).startswith("base64"):
                mime = "jpeg" if "jpeg" in str(message.get("format")) else "png"
                parts.append(f"![image](data:image/{mime};base64,{content})")
    return "\n\n".join(parts) + "\n"


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    return lines


def _cell_id() -> str:
    return uuid.uuid4().hex[:8]


def to_notebook(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Messages as markdown cells, code as code cells with their outputs attached."""
    cells: list[dict[str, Any]] = []
    last_code: dict[str, Any] | None = None
    for message in messages:
        role, kind, content = message.get("role"), message.get("type"), message.get("content")
        if kind == "code":
            code = str(content)
            magic = CELL_MAGICS.get(str(message.get("format") or "").lower())
            if magic:
                code = f"{magic}\n{code}"
            last_code = {"cell_type": "code", "execution_count": None, "id": _cell_id(), "metadata": {}, "outputs": [], "source": _lines(code)}
            cells.append(last_code)
        elif kind == "console" and message.get("format") == "output" and last_code is not None:
            last_code["outputs"].append({"output_type": "stream", "name": "stdout", "text": _lines(str(content))})
        elif kind == "image" and str(message.get("format", "")).startswith("base64") and last_code is not None:
            mime = "image/jpeg" if "jpeg" in str(message.get("format")) else "image/png"
            last_code["outputs"].append({"output_type": "display_data", "data": {mime: content}, "metadata": {}})
        elif kind == "message":
            title = ROLE_TITLES.get(role, str(role).title())
            cells.append({"cell_type": "markdown", "id": _cell_id(), "metadata": {}, "source": _lines(f"**{title}:** {content}")})
            last_code = None
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def save_markdown(messages: list[dict[str, Any]], path: Path) -> Path:
    return write_atomic(path, to_markdown(messages), mode=0o644)


def save_notebook(messages: list[dict[str, Any]], path: Path) -> Path:
    return write_atomic(path, json.dumps(to_notebook(messages), indent=1) + "\n", mode=0o644)
