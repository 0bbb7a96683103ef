"""The one exception type whose message is shown to the user as it is, and the "Did you mean" its messages share."""

from __future__ import annotations

from collections.abc import Iterable


class OiLocalError(Exception):
    """A problem the user can act on. The message is one paragraph that says what happened and what to do.

    The command line prints it without a traceback and exits with `exit_code`.
    """

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


def did_you_mean(typed: str, known: Iterable[str], *, limit: int = 5) -> str:
    """" Did you mean: a, b?" for the names that contain what was typed or are spelled nearly like it; else ""."""
    import difflib

    names = list(dict.fromkeys(known))
    lowered = typed.lower()
    containing = [n for n in names if lowered and lowered in n.lower()]
    similar = difflib.get_close_matches(typed, names, n=limit, cutoff=0.6)
    close = list(dict.fromkeys(containing + similar))[:limit]
    return f" Did you mean: {', '.join(close)}?" if close else ""
