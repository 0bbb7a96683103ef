"""Prompts pasted into a code block (`$ ls`, `>>> print(1)`): what a person would leave out when running it."""

from __future__ import annotations

# Prompts a person would not type: (prompts that start a line, prompts that continue one after those).
PROMPTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "python": ((">>> ",), ("... ",)),
    "shell": (("$ ",), ()),
}


class PromptStripper:
    """Removes the prompts of an interactive session pasted into a code block, one character at a time
    (so streamed and whole replies agree). Holds back at most a line's indentation and a prompt.

    A line starting (after indentation) with a start prompt loses the prompt. When the block's first line
    has one, the block is a session: continuation prompts are removed too, and lines without a prompt are
    what the session printed, so they are dropped. Newlines are held until more code follows."""

    def __init__(self, language: str | None) -> None:
        self.starts, self.continues = PROMPTS.get(language or "", ((), ()))
        self.session: bool | None = None  # decided by the first line
        self.state = "start"  # "start": the beginning of a line is held | "keep" | "drop"
        self.line = ""
        self.newlines = ""

    def feed(self, text: str) -> str:
        if not self.starts:
            return text
        out: list[str] = []
        for c in text:
            if self.state == "keep":
                if c == "\n":
                    self.newlines += c
                    self.state, self.line = "start", ""
                else:
                    out.append(self._flush_newlines() + c)
            elif self.state == "drop":
                if c == "\n":
                    self.state, self.line = "start", ""
            else:
                self._start_char(c, out)
        return "".join(out)

    def finish(self) -> str:
        out: list[str] = []
        if self.starts and self.state == "start" and self.line:
            self._decide(self.line, out, complete=True)
        self.newlines = ""
        return "".join(out)

    def _flush_newlines(self) -> str:
        held, self.newlines = self.newlines, ""
        return held

    def _prompts(self) -> tuple[str, ...]:
        return self.starts + (self.continues if self.session else ())

    def _start_char(self, c: str, out: list[str]) -> None:
        if c == "\n":
            self._decide(self.line, out, complete=True)
            if self.state != "drop":
                self.newlines += c
            self.state, self.line = "start", ""
            return
        self.line += c
        body = self.line.lstrip(" \t")
        if not body or any(p.startswith(body) or p.rstrip() == body for p in self._prompts()):
            return  # still indentation, or still maybe a prompt
        self._decide(self.line, out, complete=False)

    def _decide(self, line: str, out: list[str], *, complete: bool) -> None:
        """The held start of a line: a prompt (stripped), session output (dropped) or code (kept)."""
        body = line.lstrip(" \t")
        indent = line[: len(line) - len(body)]
        prompt = next((p for p in self._prompts() if body.startswith(p) or (complete and body == p.rstrip())), None)
        if prompt is not None and (self.session is not None or prompt in self.starts):
            if self.session is None:
                self.session = True
            rest = indent + body[len(prompt):]
            if rest:
                out.append(self._flush_newlines() + rest)
            self.state = "keep"
            return
        if self.session is None and body:
            self.session = False
        if self.session:
            self.state = "drop"
            return
        if line:
            out.append(self._flush_newlines() + line)
        self.state = "keep"
