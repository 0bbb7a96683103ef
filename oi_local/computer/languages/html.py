"""HTML: saved to a file the user can open in a browser (nothing is opened by itself: this may be headless)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

from oi_local.computer.languages.base import active_line, output


class HTML:
    name = "html"
    aliases = ("htm",)

    def __init__(self, computer: Any = None) -> None:
        self.computer = computer

    def run(self, code: str) -> Iterator[dict]:
        with tempfile.NamedTemporaryFile("w", suffix=".html", prefix="oi-local-", delete=False) as handle:
            handle.write(code)
        yield output(f"The HTML was saved to {handle.name}; open that file in a browser to see it.\n")
        yield active_line(None)

    def stop(self) -> None:
        pass

    def terminate(self) -> None:
        pass
