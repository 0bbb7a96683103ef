"""The one line a server start shows while it waits: a spinner with the elapsed time (only on a terminal)."""

from __future__ import annotations

import time


class Loading:
    """`Loading(label, enabled)`; `.tick()` refreshes the elapsed time, `.close()` removes the line."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label = label
        self._status = None
        self._started = time.monotonic()
        if enabled:
            from rich.console import Console

            self._status = Console(stderr=True).status(self._text())
            self._status.start()

    def _text(self) -> str:
        return f"{self.label} [dim]{time.monotonic() - self._started:.0f}s[/dim]"

    def tick(self) -> None:
        if self._status is not None:
            self._status.update(self._text())

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
