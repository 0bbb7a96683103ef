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


def __getattr__(name: str) -> Any:
    global _default_interpreter
    if name == "OpenInterpreter":
        from oi_local.agent.core import OpenInterpreter

        return OpenInterpreter
    if name == "interpreter":
        if _default_interpreter is None:
            from oi_local.agent.core import OpenInterpreter

            _default_interpreter = OpenInterpreter()
        return _default_interpreter
    if name == "local_setup":
        from oi_local.face.local_mode import local_setup

        return local_setup
    raise AttributeError(f"module 'oi_local' has no attribute {name!r}")
