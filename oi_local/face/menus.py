"""questionary prompts as the faces use them: Escape goes back one level, Ctrl-C leaves without a traceback."""

from __future__ import annotations

from typing import Any

BACK = "__oi_back__"


class Cancelled(Exception):
    """Ctrl-C in a menu: leave the explorer without a traceback."""


def escape_answers(question, result: Any) -> None:
    """Make Escape end a questionary question with `result` (its other key bindings stay)."""
    from prompt_toolkit.key_binding import KeyBindings, merge_key_bindings

    escape = KeyBindings()

    @escape.add("escape", eager=True)
    def _escape(event) -> None:
        event.app.exit(result=result)

    app = question.application
    app.key_bindings = merge_key_bindings([app.key_bindings, escape]) if app.key_bindings else escape


def ask(question) -> Any:
    """Run a questionary question; Escape answers BACK, Ctrl-C raises Cancelled."""
    escape_answers(question, BACK)
    app = question.application
    app.ttimeoutlen = 0.05  # Escape alone is recognised quickly (arrow keys start with Escape too)
    try:
        answer = question.unsafe_ask()
    except (KeyboardInterrupt, EOFError):
        raise Cancelled from None
    return BACK if answer is None else answer


def select(message: str, choices: list, default: Any = None) -> Any:
    import questionary

    values = [c.value if isinstance(c, questionary.Choice) else c for c in choices]
    use_default = default if default in values else None
    return ask(
        questionary.select(
            message, choices=choices, default=use_default, instruction="(↑/↓, Enter; Esc: back)",
            use_shortcuts=False,
        )
    )


def text(message: str, *, validate, offered: str | None = None, example: str | None = None) -> str:
    """Free text, empty to begin with, so that what the user types is all there is.

    `offered` (e.g. last time's answer) is named after the question and taken when the user just presses
    Enter; `example` is shown greyed in the empty field as a hint, never as text to delete."""
    import questionary
    from prompt_toolkit.formatted_text import FormattedText

    def check(typed: str) -> bool | str:
        return True if offered and not typed.strip() else validate(typed)

    placeholder = FormattedText([("fg:ansibrightblack", f"e.g. {example}")]) if example and not offered else None
    instruction = f"(Enter: {offered})" if offered else None
    answer = ask(questionary.text(message, validate=check, instruction=instruction, placeholder=placeholder))
    if answer != BACK and offered and not answer.strip():
        return offered
    return answer


def say(line: str = "") -> None:
    print(line, flush=True)


def valid_file(typed: str, suffix: str) -> bool | str:
    from pathlib import Path

    path = Path(typed).expanduser()
    if not typed:
        return "Type a path"
    if not path.is_file():
        return "No such file"
    if not path.name.endswith(suffix) and suffix != ".gguf":
        return f"Expected a {suffix} file"
    return True
