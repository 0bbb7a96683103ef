"""render(): run one turn of the agent and show it, asking before any code runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oi_local.errors import OiLocalError
from oi_local.terminal import confirmation
from oi_local.terminal.display import PlainDisplay, RichDisplay, make_display

STOPPED = "Stopped (Ctrl-C). Press Ctrl-C again to quit."


def render(
    interpreter: Any,
    message: Any = None,
    *,
    plain: bool = False,
    display: PlainDisplay | RichDisplay | None = None,
    read: Callable[[str], str] = input,
) -> list[dict[str, Any]]:
    """Drive interpreter.chat(stream=True, display=False) and show every chunk; returns the new messages.

    A confirmation chunk asks "y/n/e" unless auto_run: y runs the code, n stops the turn (and records the
    decline as Open Interpreter does), e edits the code in $EDITOR and runs what was saved.
    Ctrl-C stops the generation or the running code and returns; a second Ctrl-C while stopping propagates.
    """
    display = display or make_display(plain)
    start = len(interpreter.messages)
    chunks = interpreter.chat(message, stream=True, display=False)
    try:
        for chunk in chunks:
            if chunk.get("type") == "confirmation":
                if not _confirm(interpreter, chunk, display, read):
                    # recorded before closing: the agent saves the conversation as its generator closes
                    confirmation.record_decline(interpreter)
                    chunks.close()
                    break
                continue
            display.chunk(chunk)
    except KeyboardInterrupt:
        display.end_block()
        stop(interpreter, chunks)
        display.notice(STOPPED)
    finally:
        display.close()
    return interpreter.messages[start:]


def _confirm(interpreter: Any, chunk: dict[str, Any], display: PlainDisplay | RichDisplay, read: Callable[[str], str]) -> bool:
    """True when the code may run (and after `e`, the edited code is what the agent will run).
    With safe_mode on, code is never run without asking (as in Open Interpreter), and is scanned first:
    always with "auto", when the user says so with "ask"."""
    safe_mode = str(getattr(interpreter, "safe_mode", "off") or "off")
    language, code = confirmation.code_of(chunk)
    if interpreter.auto_run and safe_mode == "off":
        display.show_code(language, code)  # a reply with several blocks: the output goes under its own code
        return True
    display.end_block()
    if safe_mode in ("ask", "auto"):
        scan_before_running(interpreter, safe_mode, language, code, display, read)
    while True:
        answer = confirmation.ask(read)
        if answer == "n":
            return False
        if answer == "e":
            try:
                code = confirmation.edit_code(code, language)
            except OiLocalError as error:
                display.error(str(error))
                continue
            confirmation.apply_edit(interpreter, chunk, code)
        display.show_code(language, code)
        return True


SCAN_QUESTION = "Would you like to scan this code? (y/n) "


def scan_before_running(interpreter: Any, safe_mode: str, language: str | None, code: str, display: Any, read: Callable[[str], str]) -> None:
    """Show what safe_mode says about the code (the agent has its computer scan it); with "ask", only when the
    user wants a scan."""
    if safe_mode == "ask":
        try:
            if read(SCAN_QUESTION).strip().lower() not in ("y", "yes"):
                return
        except EOFError:
            return
    report = interpreter.safety_report(language, code)
    if report is not None:  # None: nothing new to say (the computer said it cannot scan once already)
        display.notice(report.summary())


def stop(interpreter: Any, chunks: Any) -> None:
    """Stop the turn: close the agent's generator (no further model call or run) and interrupt the computer."""
    try:
        chunks.close()
    except Exception:  # the generator may already have finished with the interrupt
        pass
    if getattr(interpreter, "_computer", True) is None:
        return  # the agent made no computer yet (nothing ran): do not create one just to stop it
    computer = getattr(interpreter, "computer", None)
    if computer is not None and hasattr(computer, "stop"):
        computer.stop()
