"""Reading the user's message at the prompt, with line editing and, with --multi_line, ''' blocks."""

from __future__ import annotations

from collections.abc import Callable

PROMPT = "> "
# A message that starts with one of these continues until a line that ends with the same marker.
MULTI_LINE_MARKERS = ("'''", '"""', "```")


def enable_line_editing() -> None:
    """Arrow keys and history at the prompt where the platform has readline."""
    try:
        import readline  # noqa: F401  (importing it is what enables line editing for input())
    except ImportError:
        pass


def read_message(*, multi_line: bool = False, read: Callable[[str], str] = input, prompt: str = PROMPT) -> str:
    """One message. With multi_line, a first line starting with ''' (or \"\"\" or ```) reads on until the
    closing marker; ''' and \"\"\" are removed, ``` is kept (it fences code the user pasted)."""
    first = read(prompt)
    if not multi_line:
        return first
    stripped = first.lstrip()
    marker = next((m for m in MULTI_LINE_MARKERS if stripped.startswith(m)), None)
    if marker is None:
        return first
    lines = [stripped]
    closed = stripped.rstrip().endswith(marker) and len(stripped.strip()) > len(marker)
    while not closed:
        line = read("")
        lines.append(line)
        closed = line.rstrip().endswith(marker)
    text = "\n".join(lines)
    if marker != "```":
        text = text.strip()[len(marker):]
        text = text.rstrip()[: -len(marker)]
    return text.strip("\n")
