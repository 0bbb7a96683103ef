"""The confirmation prompt before code runs: y runs it, n declines, e edits it in $EDITOR first."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oi_local import env
from oi_local.errors import OiLocalError

QUESTION = "Would you like to run this code? (y/n/e) "
DECLINED = "I have declined to run this code."  # what Open Interpreter records, so the model knows
SUFFIXES = {"python": ".py", "shell": ".sh", "bash": ".sh", "sh": ".sh", "javascript": ".js", "html": ".html", "r": ".r", "powershell": ".ps1", "applescript": ".applescript"}


def ask(read: Callable[[str], str] = input) -> str:
    """Ask until the answer is y, n or e (an empty answer or EOF counts as n)."""
    while True:
        try:
            answer = read(QUESTION).strip().lower()
        except EOFError:
            return "n"
        if answer in ("y", "yes"):
            return "y"
        if answer in ("", "n", "no"):
            return "n"
        if answer in ("e", "edit"):
            return "e"


def code_of(confirmation: dict[str, Any]) -> tuple[str | None, str]:
    """(language, code) of a confirmation chunk; accepts both spellings found in Open Interpreter's docs."""
    content = confirmation.get("content") or {}
    language = content.get("format") or content.get("language")
    code = content.get("content")
    if code is None:
        code = content.get("code", "")
    return language, code


def edit_code(code: str, language: str | None, *, environ: dict[str, str] | None = None) -> str:
    """Open the code in the user's editor ($VISUAL, $EDITOR, else vi) and return what they saved."""
    editor = env.get(env.VISUAL, environ) or env.get(env.EDITOR, environ) or "vi"
    fd, name = tempfile.mkstemp(prefix="oi_local_edit_", suffix=SUFFIXES.get(language or "", ".txt"))
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(code)
        try:
            status = subprocess.call([*shlex.split(editor), str(path)])
        except OSError as error:
            raise OiLocalError(f"The editor {editor!r} could not be started ({error}). Set $EDITOR to an editor that is installed.") from None
        if status != 0:
            raise OiLocalError(f"The editor {editor!r} exited with status {status}; the code was not changed. Answer y to run it as it is, or n.")
        return path.read_text(encoding="utf-8")
    finally:
        path.unlink(missing_ok=True)


def apply_edit(interpreter: Any, confirmation: dict[str, Any], edited: str) -> None:
    """Make the agent run the edited code: the confirmation's content dict and the last code message are
    both changed in place (the agent reads the code to run from them after the confirmation is consumed)."""
    content = confirmation.get("content")
    if isinstance(content, dict):
        if "code" in content and "content" not in content:
            content["code"] = edited
        else:
            content["content"] = edited
    for message in reversed(interpreter.messages):
        if message.get("type") == "code" and message.get("role") == "assistant":
            message["content"] = edited
            break


def record_decline(interpreter: Any) -> None:
    interpreter.messages.append({"role": "user", "type": "message", "content": DECLINED})
