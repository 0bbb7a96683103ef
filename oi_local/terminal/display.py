"""Display: shows streamed LMC chunks, with rich (live markdown, code and output panels) or as plain text.

Both displays take the same calls: `chunk(c)` for every streamed chunk except confirmations,
`end_block()` before anything else is printed (a prompt, a notice), `notice(text)`, `error(text)`,
`markdown(text)` and `close()`. rich is imported here, on the chat path only, never at start-up.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

# What the rich display imports when it first shows something (imported early by a warm-up).
WARM_IMPORTS = ("rich.console", "rich.live", "rich.markdown", "rich.panel", "rich.syntax", "rich.text")

# Lines of output kept on screen while a cell is running (the whole output is printed when it ends).
LIVE_OUTPUT_LINES = 30


def make_display(plain: bool = False, *, stream: TextIO | None = None) -> PlainDisplay | RichDisplay:
    return PlainDisplay(stream) if plain else RichDisplay(stream)


def image_note(chunk: dict[str, Any]) -> str:
    content = chunk.get("content") or ""
    return f"[image: {chunk.get('format') or 'unknown format'}, {len(content)} characters]"


class PlainDisplay:
    """Plain text, no escape codes: code as markdown fences, output as it comes."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.out = stream or sys.stdout
        self.kind: str | None = None  # "message" | "code" | "console" while a block is open
        self.at_line_start = True
        self.last_code = ""  # the code block printed last, to know whether code about to run is on screen

    def _write(self, text: str) -> None:
        if text:
            self.out.write(text)
            self.at_line_start = text.endswith("\n")
            self.out.flush()

    def _newline(self) -> None:
        if not self.at_line_start:
            self._write("\n")

    def chunk(self, chunk: dict[str, Any]) -> None:
        kind = chunk.get("type")
        if kind in ("message", "code") and chunk.get("role") == "assistant":
            if chunk.get("start") or self.kind != kind:
                self.end_block()
                self.kind = kind
                if kind == "code":
                    self._write(f"```{chunk.get('format') or ''}\n")
            if chunk.get("start") and kind == "code":
                self.last_code = ""
            if isinstance(chunk.get("content"), str):
                self._write(chunk["content"])
                if kind == "code":
                    self.last_code += chunk["content"]
            if chunk.get("end"):
                self.end_block()
        elif kind == "console":
            if self.kind != "console":
                self.end_block()
                self.kind = "console"
            if chunk.get("format") == "output" and isinstance(chunk.get("content"), str):
                self._write(chunk["content"])
            if chunk.get("end"):
                self.end_block()
        elif kind == "image":
            self.end_block()
            self._write(image_note(chunk) + "\n")
        elif kind == "message" and isinstance(chunk.get("content"), str) and chunk["content"]:
            self.end_block()
            self._write(chunk["content"] + "\n")

    def show_code(self, language: str | None, code: str) -> None:
        """Print the code about to run unless it is the block printed last (its output follows)."""
        if code.strip() != self.last_code.strip():
            self.end_block()
            self._write(f"```{language or ''}\n{code.rstrip()}\n```\n")
        self.last_code = ""

    def end_block(self) -> None:
        if self.kind == "code":
            self._newline()
            self._write("```\n")
        elif self.kind is not None:
            self._newline()
        self.kind = None

    def notice(self, text: str) -> None:
        self.end_block()
        self._write(text.rstrip("\n") + "\n")

    error = notice
    markdown = notice

    def close(self) -> None:
        self.end_block()


class _CodeView:
    """The renderable for one code block: the code (active line marked) and its output."""

    def __init__(self, language: str | None) -> None:
        self.language = language or "text"
        self.code = ""
        self.output = ""
        self.active_line: int | None = None
        self.live = True
        self.ran = False  # console chunks came: the code ran (so "no output" is worth saying)

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.panel import Panel
        from rich.syntax import Syntax
        from rich.text import Text

        parts = []
        if self.code:
            syntax = Syntax(
                self.code.rstrip("\n"),
                _lexer(self.language),
                theme="monokai",
                line_numbers=True,
                highlight_lines={self.active_line} if self.active_line else None,
                word_wrap=True,
            )
            parts.append(Panel(syntax, title=self.language, title_align="left", border_style="blue"))
        if self.output:
            text = self.output.rstrip("\n")
            if self.live:
                lines = text.split("\n")
                if len(lines) > LIVE_OUTPUT_LINES:
                    text = "\n".join(["...", *lines[-LIVE_OUTPUT_LINES:]])
            parts.append(Panel(Text(text), title="output", title_align="left", border_style="green"))
        elif self.ran and not self.live:
            parts.append(Text("(no output)", style="dim"))
        return Group(*parts)


def _lexer(language: str) -> str:
    return {"shell": "bash", "sh": "bash", "zsh": "bash", "powershell": "powershell", "applescript": "applescript"}.get(language, language)


class RichDisplay:
    """Live-updating markdown for messages, syntax-highlighted code panels with the active line, output panels."""

    def __init__(self, stream: TextIO | None = None) -> None:
        from rich.console import Console

        self.console = Console(file=stream, highlight=False)
        self.live = None
        self.kind: str | None = None
        self.text = ""
        self.view: _CodeView | None = None

    def _start(self, kind: str, renderable: Any) -> None:
        from rich.live import Live

        self.end_block()
        self.kind = kind
        self.live = Live(renderable, console=self.console, auto_refresh=False, vertical_overflow="visible")
        self.live.start()

    def _refresh(self) -> None:
        if self.live is None:
            return
        if self.kind == "message":
            from rich.markdown import Markdown

            self.live.update(Markdown(self.text + " ●"), refresh=True)
        else:
            self.live.update(self.view, refresh=True)

    def chunk(self, chunk: dict[str, Any]) -> None:
        kind = chunk.get("type")
        content = chunk.get("content")
        if kind == "message" and chunk.get("role") == "assistant":
            if chunk.get("start") or self.kind != "message":
                self.text = ""
                self._start("message", "")
            if isinstance(content, str):
                self.text += content
                self._refresh()
            if chunk.get("end"):
                self.end_block()
        elif kind == "code" and chunk.get("role") == "assistant":
            if chunk.get("start") or self.kind != "code" or (self.view and self.view.output):
                self.view = _CodeView(chunk.get("format"))
                self._start("code", self.view)
            if isinstance(content, str):
                self.view.code += content
                self._refresh()
        elif kind == "console":
            if self.kind != "code" or self.view is None:
                self.view = _CodeView(chunk.get("format") if chunk.get("format") not in ("output", "active_line") else None)
                self._start("code", self.view)
            self.view.ran = True
            if chunk.get("format") == "active_line":
                self.view.active_line = int(content) if content not in (None, "") else None
                self._refresh()
            elif chunk.get("format") == "output" and isinstance(content, str):
                self.view.output += content
                self._refresh()
            if chunk.get("end"):
                self.end_block()
        elif kind == "image":
            self.end_block()
            self.console.print(image_note(chunk), style="dim")
        elif kind == "message" and isinstance(content, str) and content:
            self.end_block()
            self.console.print(content, style="dim", markup=False)

    def show_code(self, language: str | None, code: str) -> None:
        """Open a code block for code about to run, unless it is the block still on screen, not yet run."""
        view = self.view
        if self.kind == "code" and view is not None and not view.ran and view.code.strip() == code.strip():
            return
        self.view = _CodeView(language)
        self.view.code = code
        self._start("code", self.view)

    def end_block(self) -> None:
        if self.live is not None:
            if self.kind == "message":
                from rich.markdown import Markdown

                self.live.update(Markdown(self.text), refresh=True)
            elif self.view is not None:
                self.view.live = False
                self.view.active_line = None
                self.live.update(self.view, refresh=True)
            self.live.stop()
            if not self.console.is_terminal:
                self.console.line()  # off a terminal, rich leaves the last line of a live block unended
        self.live = None
        self.kind = None

    def notice(self, text: str) -> None:
        self.end_block()
        self.console.print(text, markup=False, highlight=False)

    def error(self, text: str) -> None:
        self.end_block()
        self.console.print(text, style="bold red", markup=False, highlight=False)

    def markdown(self, text: str) -> None:
        from rich.markdown import Markdown

        self.end_block()
        self.console.print(Markdown(text))

    def close(self) -> None:
        self.end_block()
