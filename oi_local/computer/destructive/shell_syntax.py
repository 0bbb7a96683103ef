"""Shell code read as the simple commands it runs, closely enough to tell what each command does.

Not a shell: words are unquoted ('...', "...", $'...', backslashes), comments dropped, and the code is cut
into simple commands at ; && || | |& & ( ) and newlines; a quoted `;` stays inside its word. Redirections
are kept apart from the words, here-documents are read with their command, and the text of every command
substitution ($(...), `...`, <(...), >(...)) is kept so that it can be read as shell code of its own.
Variables are not expanded; a word keeps them as written (`$HOME/x`). Unbalanced quotes run to the end of
the code, as bash reads them up to the point where it fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SEPARATORS = frozenset({";", "&&", "||", "|", "|&", "&", "\n", "(", ")", ";;", ";&", ";;&"})
REDIRECTIONS = frozenset({">", ">>", ">|", "<", "<<", "<<-", "<<<", "<>", "&>", "&>>", ">&", "<&"})
_OPERATORS = sorted(SEPARATORS | REDIRECTIONS, key=len, reverse=True)
_OPERATOR_START = frozenset(";&|()<>\n")
_ANSI_C = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "v": "\v", "f": "\f"}
_FD_NUMBER = re.compile(r"\d+|\{\w+\}")


@dataclass(frozen=True)
class Token:
    text: str
    line: int
    operator: bool = False


@dataclass
class Command:
    """One simple command: its words, its redirections (operator, target), the operator that ended it, the
    here-document or here-string fed to it, and the line (1-based) where it starts."""

    words: list[str] = field(default_factory=list)
    redirections: list[tuple[str, str]] = field(default_factory=list)
    ended_by: str = ""
    stdin_text: str | None = None
    line: int = 1


@dataclass
class Script:
    """Shell code as its simple commands, its tokens (for patterns across commands, such as function
    definitions) and the texts of its command substitutions."""

    commands: list[Command]
    tokens: list[Token]
    substitutions: list[tuple[int, str]]  # (line, text)


def parse(code: str) -> Script:
    reader = _Reader(code)
    reader.read()
    return Script(split_commands(reader.tokens, reader.heredocs), reader.tokens, reader.substitutions)


class _Reader:
    def __init__(self, code: str) -> None:
        self.code = code
        self.i = 0
        self.line = 1
        self.tokens: list[Token] = []
        self.substitutions: list[tuple[int, str]] = []
        self.heredocs: dict[int, str] = {}  # index of the `<<` token -> body
        self._pending: list[tuple[int, str, bool]] = []  # (token index, delimiter, strip tabs)
        self._word: list[str] = []
        self._in_word = False
        self._word_line = 1

    # -- words and operators ----------------------------------------------------------------------------

    def read(self) -> None:
        code = self.code
        while self.i < len(code):
            char = code[self.i]
            if char == "\\" and code.startswith("\\\n", self.i):
                self.i += 2
                self.line += 1
            elif char in " \t\r":
                self._end_word()
                self.i += 1
            elif char == "#" and not self._in_word:
                end = code.find("\n", self.i)
                self.i = len(code) if end < 0 else end
            elif char in _OPERATOR_START:
                if not self._process_substitution():
                    self._operator()
            else:
                self._word_part(char)
        self._end_word()

    def _operator(self) -> None:
        code = self.code
        text = next(op for op in _OPERATORS if code.startswith(op, self.i))
        if text in REDIRECTIONS and self._in_word and _FD_NUMBER.fullmatch("".join(self._word)):
            self._word, self._in_word = [], False  # `2>` : the fd number belongs to the redirection
        self._end_word()
        self.tokens.append(Token(text, self.line, operator=True))
        self.i += len(text)
        if text == "\n":
            self.line += 1
            self._read_heredoc_bodies()
        elif text in ("<<", "<<-"):
            self._pending_heredoc(strip_tabs=text == "<<-")

    def _word_part(self, char: str) -> None:
        if not self._in_word:
            self._in_word, self._word_line = True, self.line
        code = self.code
        if char == "\\":
            self._word.append(code[self.i + 1: self.i + 2])
            self.i += 2
        elif char == "'":
            end = _find(code, "'", self.i + 1)
            self._add_text(code[self.i + 1: end])
            self.i = end + 1
        elif char == '"':
            self._double_quoted()
        elif code.startswith("$'", self.i):
            self._ansi_c_quoted()
        elif code.startswith("$(", self.i) and not code.startswith("$((", self.i):
            self._substitution(self.i + 2, "(", ")")
        elif code.startswith("${", self.i) or code.startswith("$((", self.i):
            end = _matching(code, self.i + 1, code[self.i + 1], "}" if code[self.i + 1] == "{" else ")")
            self._add_text(code[self.i: end + 1])
            self.i = end + 1
        elif char == "`":
            self._backticks()
        else:
            self._word.append(char)
            if char == "\n":
                self.line += 1
            self.i += 1

    def _add_text(self, text: str) -> None:
        self._word.append(text)
        self.line += text.count("\n")

    def _double_quoted(self) -> None:
        code = self.code
        self.i += 1
        while self.i < len(code) and code[self.i] != '"':
            char = code[self.i]
            if char == "\\" and self.i + 1 < len(code):
                following = code[self.i + 1]
                self._add_text(following if following in '$`"\\\n' else char + following)
                self.i += 2
            elif code.startswith("$(", self.i) and not code.startswith("$((", self.i):
                self._substitution(self.i + 2, "(", ")")
            elif char == "`":
                self._backticks()
            else:
                self._add_text(char)
                self.i += 1
        self.i += 1

    def _ansi_c_quoted(self) -> None:
        code = self.code
        self.i += 2
        while self.i < len(code) and code[self.i] != "'":
            if code[self.i] == "\\" and self.i + 1 < len(code):
                self._word.append(_ANSI_C.get(code[self.i + 1], code[self.i + 1]))
                self.i += 2
            else:
                self._add_text(code[self.i])
                self.i += 1
        self.i += 1

    def _substitution(self, start: int, opening: str, closing: str) -> None:
        end = _matching(self.code, start - 1, opening, closing)
        text = self.code[start:end]
        self.substitutions.append((self.line, text))
        self._add_text(f"$({text})")
        self.i = end + 1

    def _backticks(self) -> None:
        end = _find(self.code, "`", self.i + 1)
        text = self.code[self.i + 1: end].replace("\\`", "`")
        self.substitutions.append((self.line, text))
        self._add_text(f"$({text})")
        self.i = end + 1

    def _process_substitution(self) -> bool:
        """<(...) and >(...) read as a substitution (a word), not as a redirection."""
        code = self.code
        if code[self.i] in "<>" and code.startswith("(", self.i + 1):
            if not self._in_word:
                self._in_word, self._word_line = True, self.line
            self._substitution(self.i + 2, "(", ")")
            return True
        return False

    def _end_word(self) -> None:
        if self._in_word:
            self.tokens.append(Token("".join(self._word), self._word_line))
        self._word, self._in_word = [], False

    # -- here-documents ---------------------------------------------------------------------------------

    def _pending_heredoc(self, strip_tabs: bool) -> None:
        """The delimiter is the next word; its body starts on the next line."""
        index = len(self.tokens) - 1
        code = self.code
        while self.i < len(code) and code[self.i] in " \t":
            self.i += 1
        start = self.i
        while self.i < len(code) and code[self.i] not in " \t\n;&|<>()":
            self.i += 1
        delimiter = code[start:self.i].replace('"', "").replace("'", "").replace("\\", "")
        self.tokens.append(Token(delimiter, self.line))
        self._pending.append((index, delimiter, strip_tabs))

    def _read_heredoc_bodies(self) -> None:
        code = self.code
        for index, delimiter, strip_tabs in self._pending:
            lines = []
            while self.i < len(code):
                end = code.find("\n", self.i)
                end = len(code) if end < 0 else end
                line = code[self.i:end]
                self.i = min(end + 1, len(code))
                self.line += 1
                if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                    break
                lines.append(line)
            self.heredocs[index] = "\n".join(lines) + "\n"
        self._pending = []


def _find(code: str, char: str, start: int) -> int:
    """The index of the next unescaped `char` from `start` (the end of the code when there is none)."""
    i = start
    while i < len(code):
        if code[i] == "\\" and char != "'":
            i += 2
            continue
        if code[i] == char:
            return i
        i += 1
    return len(code)


def _matching(code: str, start: int, opening: str, closing: str) -> int:
    """The index of the `closing` that matches the `opening` at `start`, skipping quoted text."""
    depth = 0
    i = start
    while i < len(code):
        char = code[i]
        if char == "\\":
            i += 2
            continue
        if char in "'\"`":
            i = _find(code, char, i + 1) + 1
            continue
        if char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return len(code)


# -- simple commands ------------------------------------------------------------------------------------

def split_commands(tokens: list[Token], heredocs: dict[int, str] | None = None) -> list[Command]:
    """The simple commands of `tokens`; `heredocs` maps the index of a `<<` token to its body."""
    heredocs = heredocs or {}
    commands: list[Command] = []
    current = Command()
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.operator and token.text in SEPARATORS:
            current.ended_by = token.text
            if current.words or current.redirections:
                commands.append(current)
            current = Command(line=token.line + (token.text == "\n"))
        elif token.operator:  # a redirection and its target
            target = tokens[index + 1].text if index + 1 < len(tokens) and not tokens[index + 1].operator else ""
            if token.text in ("<<", "<<-"):
                current.stdin_text = heredocs.get(index, "")
            elif token.text == "<<<":
                current.stdin_text = target + "\n"
            else:
                current.redirections.append((token.text, target))
            index += 1 if target else 0
        else:
            if not current.words and not current.redirections:
                current.line = token.line
            current.words.append(token.text)
        index += 1
    if current.words or current.redirections:
        commands.append(current)
    return commands
