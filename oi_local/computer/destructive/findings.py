"""What the destructive-command check found: where, and what the command would do."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# A further rule for each simple command: the words that really run -> what the command does, or None.
CommandRule = Callable[[list[str]], "str | None"]

MAX_DEPTH = 6  # code inside code (bash -c "...", python -c "...", os.system("...")) is read this deep


@dataclass(frozen=True)
class Finding:
    line: int  # 1-based, in the code that was checked
    what: str  # what the command would do, as the end of a sentence: "removes / (the whole machine)"

    def at(self, line: int) -> Finding:
        """The same finding, placed at `line` of the code around the code it was found in."""
        return Finding(line, self.what)
