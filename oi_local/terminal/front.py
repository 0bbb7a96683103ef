"""The terminal as the agent's display: what `chat(display=True)` shows through (the package sets it as the
display_factory of `oi_local.OpenInterpreter`; the agent itself never imports the terminal)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from oi_local.terminal.chat_loop import chat_loop
from oi_local.terminal.display import make_display
from oi_local.terminal.render import render


class TerminalDisplay:
    """One chat() call shown in the terminal, with the interpreter's plain / multi_line settings."""

    def __init__(self, interpreter: Any) -> None:
        self.plain = bool(getattr(interpreter, "plain", False))
        self.multi_line = bool(getattr(interpreter, "multi_line", False))

    def turn(self, interpreter: Any, message: Any) -> list[dict[str, Any]]:
        return render(interpreter, message, plain=self.plain)

    def chat_loop(self, interpreter: Any) -> int:
        return chat_loop(interpreter, plain=self.plain, multi_line=self.multi_line)

    def stream(self, interpreter: Any, chunks: Iterator[dict]) -> Iterator[dict]:
        """Show the chunks as they pass through to the caller (who answers the confirmations)."""
        display = make_display(self.plain)
        try:
            for chunk in chunks:
                if chunk.get("type") != "confirmation":
                    display.chunk(chunk)
                yield chunk
        finally:
            display.close()


def terminal_display(interpreter: Any) -> TerminalDisplay:
    return TerminalDisplay(interpreter)
