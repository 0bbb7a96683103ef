"""The interactive chat: read a message, run a turn (or a magic command), repeat until Ctrl-C or Ctrl-D."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oi_local.errors import OiLocalError
from oi_local.terminal import magic
from oi_local.terminal.display import make_display
from oi_local.terminal.line_input import enable_line_editing, read_message
from oi_local.terminal.render import render

WELCOME = "Type a task and press Enter. %help lists the commands; Ctrl-C stops a run, Ctrl-C at the prompt (or Ctrl-D) quits."


def chat_loop(
    interpreter: Any,
    *,
    plain: bool = False,
    multi_line: bool = False,
    initial_message: str | None = None,
    read: Callable[[str], str] = input,
) -> int:
    """Chat until the user quits; returns the exit code (0). Ctrl-C during a turn returns to the prompt;
    Ctrl-C at the prompt, or while a stopped turn is still being stopped, quits."""
    if read is input:
        enable_line_editing()
    display = make_display(plain)
    display.notice(WELCOME)
    message = initial_message
    while True:
        if message is None:
            try:
                message = read_message(multi_line=multi_line, read=read)
            except (KeyboardInterrupt, EOFError):
                display.notice("")
                return 0
        if message.strip():
            try:
                if magic.is_magic(message):
                    try:
                        magic.handle(interpreter, message, display)
                    except KeyboardInterrupt:  # e.g. a slow %tokens: back to the prompt, as for a turn
                        display.close()
                        display.notice("Stopped (Ctrl-C).")
                else:
                    render(interpreter, message, display=display, read=read)
            except OiLocalError as error:  # the endpoint failed, a budget is spent...: say so, keep chatting
                display.error(f"Error: {error}")
            except KeyboardInterrupt:  # a second Ctrl-C while the first one was being handled
                display.close()
                display.notice("")
                return 0
        message = None
