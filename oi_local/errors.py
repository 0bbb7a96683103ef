"""The one exception type whose message is shown to the user as it is."""

from __future__ import annotations


class OiLocalError(Exception):
    """A problem the user can act on. The message is one paragraph that says what happened and what to do.

    The command line prints it without a traceback and exits with `exit_code`.
    """

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
