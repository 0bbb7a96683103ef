"""oi_local: Open Interpreter's local mode as a product of its own.

`from oi_local import interpreter, OpenInterpreter, local_setup`. The names are resolved lazily so that
`import oi_local` (and `interpreter --help`) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["OpenInterpreter", "interpreter", "local_setup", "__version__"]

if TYPE_CHECKING:
    from oi_local.agent.core import OpenInterpreter
    from oi_local.face.local_mode import local_setup

_default_interpreter = None


def _with_terminal() -> type:
    """The agent's class with the terminal as the display of chat(display=True), as Open Interpreter's
    `interpreter.chat("...")` shows its chat (the terminal's modules load only when something is shown)."""
    from oi_local.agent.core import OpenInterpreter

    if OpenInterpreter.display_factory is None:
        OpenInterpreter.display_factory = staticmethod(_terminal_display)
    return OpenInterpreter


def _terminal_display(interpreter: Any) -> Any:
    from oi_local.terminal.front import terminal_display

    return terminal_display(interpreter)


def __getattr__(name: str) -> Any:
    global _default_interpreter
    if name == "OpenInterpreter":
        return _with_terminal()
    if name == "interpreter":
        if _default_interpreter is None:
            _default_interpreter = _with_terminal()()
        return _default_interpreter
    if name == "local_setup":
        from oi_local.face.local_mode import local_setup

        return local_setup
    raise AttributeError(f"module 'oi_local' has no attribute {name!r}")
