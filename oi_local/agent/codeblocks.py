"""Streaming markdown-fence parser: a text-only model's reply, arriving in pieces, becomes LMC chunks.

The parser reads the reply one character at a time and only ever holds back what it cannot decide yet
(a run of backticks, a fence's info string, a newline that may precede a closing fence), so the messages
it produces do not depend on how the reply was split into pieces. What it does:

- a fence (three or more backticks or tildes, indented or not, CR LF or LF line ends) at the start of a
  line opens a block; the first word of the info string names the language (a space before it is fine;
  aliases resolved: py -> python, sh/bash/zsh/console -> shell, js/node -> javascript, ...); a fence after
  text on the same line (a list item's `1. ```python`) opens a block when the info string is a known
  language (or, for backticks, empty);
- an untagged fence is code; its language is guessed from the first line (shell for common commands,
  python otherwise);
- a fence tagged as data (text, output, json, ...) is not code: it stays in the message as markdown;
- a block closes at a line of at least as many of its fence characters (or, for backticks, such a run
  ending a line of code), or at the end of the reply; the newline before the closing fence and blank lines
  around code are not code;
- prompts pasted into a block are not code: `$ ` before shell commands, `>>> ` (and, after one, `... `)
  before Python; when a block's first line has a prompt, its lines without one are the session's output
  and are dropped;
- backticks inside code or text that do not form a fence are kept as they are.

`python_in_shell` tells a block tagged shell that holds Python (`print(len(os.listdir()))`: small models
tag by habit) from a shell script; the agent runs such a block as Python.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

from oi_local.agent.pasted_prompts import PromptStripper

LANGUAGE_ALIASES: dict[str, str] = {
    "python": "python", "py": "python", "python3": "python", "py3": "python", "ipython": "python",
    "pycon": "python", "python-repl": "python",
    "shell": "shell", "sh": "shell", "bash": "shell", "zsh": "shell",
    "console": "shell", "shell-session": "shell", "terminal": "shell",
    "javascript": "javascript", "js": "javascript", "node": "javascript", "nodejs": "javascript",
    "html": "html",
    "r": "r",
    "applescript": "applescript", "osascript": "applescript",
    "powershell": "powershell", "ps1": "powershell", "pwsh": "powershell",
}

# Fences with these tags hold data, not instructions: they are shown, never run.
NOT_CODE_TAGS = frozenset({
    "text", "txt", "plaintext", "plain", "output", "result", "results", "stdout", "json", "yaml", "yml",
    "csv", "tsv", "markdown", "md", "xml", "log", "diff", "toml", "ini", "math", "latex", "tex",
})

SHELL_WORDS = frozenset({
    "ls", "cd", "cat", "echo", "pwd", "mkdir", "rm", "cp", "mv", "touch", "grep", "find", "head", "tail",
    "wc", "sort", "uniq", "chmod", "chown", "git", "pip", "pip3", "apt", "apt-get", "brew", "curl", "wget",
    "tar", "unzip", "zip", "du", "df", "ps", "kill", "which", "whoami", "date", "uname", "export", "sudo",
    "npm", "npx", "make", "sed", "awk", "xargs", "tree", "file", "stat", "env", "printf", "python3", "python",
})


def canonical_language(tag: str) -> str:
    """The language name for a fence tag: aliases resolved, unknown tags kept (lower-cased)."""
    tag = tag.strip().lower()
    return LANGUAGE_ALIASES.get(tag, tag)


def guess_language(first_line: str) -> str:
    """Untagged code: shell when the first word is a common command (or a `$ ` prompt), python otherwise."""
    line = first_line.strip()
    if line.startswith("$ ") or line == "$":
        return "shell"
    word = line.split(" ", 1)[0] if line else ""
    if word in SHELL_WORDS and not line.startswith(("python(", "print(")) and "(" not in word:
        # `python3 script.py` is a command; `python3` alone would start a REPL either way.
        return "shell"
    return "python"


_PYTHON_ONLY = (ast.Call, ast.Import, ast.ImportFrom, ast.With, ast.For, ast.While,
                ast.FunctionDef, ast.If, ast.Subscript)


def python_in_shell(code: str) -> bool:
    """A block tagged shell that is Python, not a script: it parses as Python, its first line does not
    start with a shell command, and it does more than name something (`whoami` parses as Python too)."""
    lines = [line for line in code.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines or guess_language(lines[0]) != "python":
        return False
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return any(isinstance(node, _PYTHON_ONLY) for node in ast.walk(tree))


def _fence_tag(info: str) -> str:
    words = info.strip().split()
    if not words:
        return ""
    return words[0].strip("{}.").lower()


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c in "+#_-."


FENCE_CHARS = "`~"

class FenceParser:
    """Feed pieces of one reply with feed(); call finish() at the end. Both return LMC chunks
    ({"role": "assistant", "type": "message"|"code", "format"?: LANG, "start"|"content"|"end": ...})."""

    def __init__(self, role: str = "assistant") -> None:
        self.role = role
        self.out: list[dict] = []
        self.open_kind: tuple[str, str | None] | None = None  # the LMC message being streamed
        self.mode = "text"  # "text" | "code" | "datafence" (a non-code fence kept as text)
        self.sub = "prefix"  # where we are in the current line
        self.held = ""  # characters not yet decided
        self.ticks = 0  # length of the fence-character run being held
        self.run_char = "`"  # the character of that run
        self.info = ""
        self.fence_ticks = 0  # length of the fence that opened the current block
        self.fence_char = "`"  # and its character
        self.language: str | None = None  # None while an untagged block's first line is awaited
        self.untagged = ""
        self.pending_ws = ""  # message whitespace held until more text follows
        self.pending_nl = ""  # code newlines held until more code follows (dropped before a closing fence)
        self.code_started = False
        self.stripper = PromptStripper(None)
        self.carriage_return = False  # a piece ended in "\r": it may be half of a CR LF
        self.blocks: list[tuple[str, str]] = []  # (language, code) of every finished block, in order
        self._code: list[str] = []

    # -- public ---------------------------------------------------------------------------------------

    def feed(self, text: str) -> list[dict]:
        if self.carriage_return:
            text, self.carriage_return = "\r" + text, False
        if text.endswith("\r"):
            text, self.carriage_return = text[:-1], True
        for c in text.replace("\r\n", "\n"):
            self._char(c)
        out, self.out = self.out, []
        return out

    def finish(self) -> list[dict]:
        if self.carriage_return:  # the reply ended with it: a line end
            self.carriage_return = False
            self._char("\n")
        if self.mode == "text":
            held = self.held
            self.held = ""
            self._text_out(held)
        else:
            if self.sub in ("prefix", "ticks", "closer") and self.ticks >= self.fence_ticks:
                fence = self.held.strip()
                self.held = ""
                self._close_block(closing_fence=fence)
            else:
                held = self.held
                self.held = ""
                self._code_out(held)
                self._close_block(closing_fence="")
        self._end_open()
        out, self.out = self.out, []
        return out

    def _char(self, c: str) -> None:
        if self.mode == "text":
            self._text_char(c)
        else:
            self._code_char(c)

    # -- emitting -------------------------------------------------------------------------------------

    def _end_open(self) -> None:
        if self.open_kind is not None:
            kind, fmt = self.open_kind
            self.out.append(self._chunk(kind, fmt, end=True))
            self.open_kind = None

    def _chunk(self, kind: str, fmt: str | None, **flag) -> dict:
        chunk: dict = {"role": self.role, "type": kind}
        if fmt is not None:
            chunk["format"] = fmt
        chunk.update(flag)
        return chunk

    def _emit(self, kind: str, fmt: str | None, text: str) -> None:
        if not text:
            return
        if self.open_kind != (kind, fmt):
            self._end_open()
            self.open_kind = (kind, fmt)
            self.out.append(self._chunk(kind, fmt, start=True))
        self.out.append(self._chunk(kind, fmt, content=text))

    def _text_out(self, text: str) -> None:
        """Message text; whitespace is held so that a message neither starts nor ends with blank space."""
        for c in text:
            if c.isspace():
                self.pending_ws += c
                continue
            lead = self.pending_ws if self.open_kind == ("message", None) else ""
            self.pending_ws = ""
            self._emit("message", None, lead + c)

    def _code_out(self, text: str) -> None:
        if self.mode == "datafence":
            self._text_out(text)
            return
        for c in text:
            if c == "\n":
                if self.code_started or self.untagged:
                    self.pending_nl += c
                continue
            if self.pending_nl:
                nl, self.pending_nl = self.pending_nl, ""
                self._code_text(nl)
            self._code_text(c)

    def _code_text(self, text: str) -> None:
        if self.language is None:
            self.untagged += text
            if "\n" in self.untagged:
                self._resolve_untagged()
            return
        self.code_started = True
        self._code_emit(self.stripper.feed(text))

    def _code_emit(self, text: str) -> None:
        if text:
            self._code.append(text)
            self._emit("code", self.language, text)

    def _resolve_untagged(self) -> None:
        buffered, self.untagged = self.untagged, ""
        self.language = guess_language(buffered.split("\n", 1)[0])
        self.stripper = PromptStripper(self.language)
        if buffered:
            self.code_started = True
            self._code_emit(self.stripper.feed(buffered))

    # -- text mode ------------------------------------------------------------------------------------

    def _text_char(self, c: str) -> None:
        sub = self.sub
        if sub == "prefix":  # at the start of a line: indentation, then maybe a fence
            if self._hold_run_char(c, FENCE_CHARS, indent=True):
                return
            if self.ticks >= 3:
                self.sub, self.info = "info", ""
                self._text_char(c)
                return
            self._text_not_a_fence(c)
            return
        if sub in ("info", "midinfo"):
            if c == "\n":
                self._open_fence(self.info, mid_line=sub == "midinfo")
                return
            if (c == "`" and self.run_char == "`") or (sub == "midinfo" and not self._midinfo_char(c)):
                self._text_not_a_fence(c)
                return
            self.info += c
            self.held += c
            return
        if sub == "ticks":  # a fence-character run after text on the same line
            if self._hold_run_char(c, FENCE_CHARS):
                return
            if self.ticks >= 3 and (c in "\n \t" or _is_word_char(c)):
                self.sub, self.info = "midinfo", ""
                self._text_char(c)
                return
            self._text_not_a_fence(c)
            return
        self._line_char(c, self._text_out, FENCE_CHARS)  # sub == "normal": inside a line of text

    def _midinfo_char(self, c: str) -> bool:
        """After text on the same line, a fence's info is a language name, maybe after spaces."""
        if c in " \t":
            return not self.info.strip()
        return _is_word_char(c)

    def _text_not_a_fence(self, c: str) -> None:
        self._release_held(self._text_out)
        self._text_char(c)

    # -- both modes -----------------------------------------------------------------------------------

    def _hold_run_char(self, c: str, allowed: str, *, indent: bool = False) -> bool:
        """Holds back a character of a possible fence (or, before the first, indentation); False otherwise.
        A run is of one character: backticks or tildes, never both."""
        if self.ticks == 0 and c in allowed:
            self.run_char = c
        if (self.ticks > 0 and c == self.run_char) or (self.ticks == 0 and c in allowed):
            self.held += c
            self.ticks += 1
            return True
        if indent and c in " \t" and self.ticks == 0:
            self.held += c
            return True
        return False

    def _line_char(self, c: str, out: Callable[[str], None], fence_chars: str) -> None:
        """A character inside a line: a fence character may begin a fence, anything else goes out."""
        if c in fence_chars:
            self.sub, self.held, self.ticks, self.run_char = "ticks", c, 1, c
            return
        out(c)
        if c == "\n":
            self.sub, self.ticks = "prefix", 0

    def _release_held(self, out: Callable[[str], None]) -> None:
        """What was held back as a possible fence turns out to be ordinary content."""
        held = self.held
        self.held, self.ticks, self.info, self.sub = "", 0, "", "normal"
        out(held)

    def _open_fence(self, info: str, *, mid_line: bool) -> None:
        tag = _fence_tag(info)
        if mid_line and ((tag and tag not in LANGUAGE_ALIASES) or (not tag and self.run_char != "`")):
            # a run after text is a fence only before a known language name (or, for backticks, nothing)
            self.held += "\n"
            self._release_held(self._text_out)
            self.sub, self.ticks = "prefix", 0
            return
        fence_ticks = self.ticks
        if tag in NOT_CODE_TAGS:
            held = self.held + "\n"
            self.held = ""
            self._text_out(held)
            self.mode = "datafence"
        else:
            self.held = ""
            self.pending_ws = ""
            self._end_open()
            self.mode = "code"
            self.language = canonical_language(tag) if tag else None
            self.stripper = PromptStripper(self.language)
            self.code_started = False
            self.untagged = ""
            self.pending_nl = ""
            self._code = []
        self.fence_ticks, self.fence_char = fence_ticks, self.run_char
        self.sub, self.ticks, self.info = "prefix", 0, ""

    # -- code mode ------------------------------------------------------------------------------------

    def _code_char(self, c: str) -> None:
        sub = self.sub
        if sub == "prefix":
            if self._hold_run_char(c, self.fence_char, indent=True):
                return
            if self.ticks >= self.fence_ticks:
                self.sub = "closer"
                self._code_char(c)
                return
            self._code_not_a_fence(c)
            return
        if sub == "ticks":
            if self._hold_run_char(c, self.fence_char):
                return
            if self.ticks >= self.fence_ticks and c in " \t\n":
                self.sub = "closer"
                self._code_char(c)
                return
            self._code_not_a_fence(c)
            return
        if sub == "closer":  # a fence run that closes the block if only whitespace follows on its line
            if c in " \t":
                self.held += c
                return
            if c == "\n":
                fence = self.held.strip()
                self.held = ""
                self._close_block(closing_fence=fence)
                return
            self._code_not_a_fence(c)
            return
        # sub == "normal"; only a backtick run may close a block at the end of a line of code
        self._line_char(c, self._code_out, "`" if self.fence_char == "`" else "")

    def _code_not_a_fence(self, c: str) -> None:
        self._release_held(self._code_out)
        self._code_char(c)

    def _close_block(self, *, closing_fence: str) -> None:
        if self.mode == "datafence":
            self._text_out(closing_fence)
            # the newline after the closing fence is a line break in the message
            self.pending_ws += "\n"
        else:
            if self.language is None:
                self._resolve_untagged()
            self._code_emit(self.stripper.finish())
            self.pending_nl = ""
            self._end_open()
            code = "".join(self._code)
            if code.strip():
                self.blocks.append((self.language or "python", code))
            self._code = []
        self.mode, self.sub, self.ticks, self.held = "text", "prefix", 0, ""
        self.language = None
        self.code_started = False


def parse(reply: str) -> list[dict]:
    """The whole reply at once, as complete LMC messages (the parser's chunks assembled)."""
    parser = FenceParser()
    return assemble(parser.feed(reply) + parser.finish())


def assemble(chunks: list[dict]) -> list[dict]:
    """Start/content/end chunks joined into complete messages."""
    messages: list[dict] = []
    for chunk in chunks:
        if chunk.get("start"):
            message = {k: v for k, v in chunk.items() if k != "start"}
            message["content"] = ""
            messages.append(message)
        elif "content" in chunk and not chunk.get("end"):
            messages[-1]["content"] += chunk["content"]
    return messages
