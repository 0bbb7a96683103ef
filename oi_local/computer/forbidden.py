"""Forbidden commands: code that would wreck the machine is refused before any of it runs.

Two checks, both on the text of the code (nothing is run to find out):

1. The destructive classes (computer/destructive/), always on for shell and Python code: recursive removal
   of /, a home folder or a system folder (or of everything in one), writes to disk devices (dd, mkfs,
   wipefs, shred, redirections), fork bombs, recursive chmod/chown of the system. Shell code is read as
   the simple commands it runs (sudo, env, xargs, bash -c and the like taken off; options normalised);
   Python code with ast (shutil, os, pathlib, subprocess, IPython's `!`).
2. `computer.forbidden_commands` (the seed's setting; the default list below is ours). Each entry is read
   as a shell command and matches a command of the code that runs the same program with the same operands
   and at least the entry's options, after normalisation: `sudo /bin/rm -fr "/data" # x` matches the
   entry `rm -rf /data`. In any other language an entry matches a line of the code read the same way.

The whole block is refused, not just the command: running the rest without it could do worse. This is a
seatbelt against a model's slip, not a sandbox: code can always reach the same effect in ways no text check
sees (README, "Forbidden commands").
"""

from __future__ import annotations

import functools
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass

from oi_local.computer.destructive.findings import CommandRule, Finding
from oi_local.computer.destructive.python import check_python
from oi_local.computer.destructive.shell import check_shell
from oi_local.computer.destructive.shell_commands import options_and_operands, program_name, unwrap
from oi_local.computer.destructive.shell_syntax import parse

DEFAULT_FORBIDDEN_COMMANDS: tuple[str, ...] = (
    "rm -rf /",
    "rm -rf /*",
    "rm -rf ~",
    "rm -rf ~/",
    "rm -rf ~/*",
    "rm -rf --no-preserve-root /",
    "sudo rm -rf /",
    "sudo rm -rf /*",
    "sudo rm -rf --no-preserve-root /",
    ":(){ :|:& };:",
    "chmod -R 777 /",
    "sudo chmod -R 777 /",
    "dd if=/dev/zero of=/dev/sda",
    "dd if=/dev/random of=/dev/sda",
    "mkfs.ext4 /dev/sda",
    "mv ~ /dev/null",
)


_RECURSIVE_AND_FORCE = {"-R": "-r", "--recursive": "-r", "--force": "-f"}
_SYNONYMS = {"rm": _RECURSIVE_AND_FORCE, "cp": _RECURSIVE_AND_FORCE}  # options that mean the same


@dataclass(frozen=True)
class Refusal:
    """Why a block of code was not run: the line that holds the command, and what the command would do."""

    line: str
    what: str

    def message(self) -> str:
        return (
            f"This code was not run: its line `{self.line}` {self.what}. oi_local refuses such commands before "
            "any of the code runs (its check for destructive commands and the list in "
            "computer.forbidden_commands), so nothing of this block ran. Do it another way, for example by "
            "naming the exact file or folder it should act on, or ask the user to run it themselves.\n"
        )


def find_forbidden(
    code: str, forbidden: Iterable[str], language: str = "shell", cwd: str | None = None
) -> Refusal | None:
    """Why `code` in `language` must not run, or None. `cwd` is the folder shell code starts in, if known."""
    entries = [entry.strip() for entry in forbidden if entry and entry.strip()]
    rule = _entries_rule(entries)
    if language in ("shell", "python"):
        check = check_shell(code, cwd, also=rule) if language == "shell" else check_python(code, also=rule)
        several = [entry for entry in entries if _single_command_shape(entry) is None]
        found = check or _entry_line(code, several, None)
    else:
        found = _entry_line(code, entries, rule)
    if found is None:
        return None
    lines = code.splitlines()
    line = lines[found.line - 1].strip() if 0 < found.line <= len(lines) else code.strip()
    return Refusal(line, found.what)


def _entries_rule(entries: list[str]) -> CommandRule | None:
    """The rule for check_shell that matches the commands of the entries, normalised."""
    shapes = [(entry, shape) for entry in entries if (shape := _single_command_shape(entry)) is not None]
    if not shapes:
        return None

    def rule(words: list[str]) -> str | None:
        code_shape = _shape(words)
        for entry, (program, options, operands) in shapes:
            if code_shape[0] == program and options <= code_shape[1] and code_shape[2] == operands:
                return f"is one of computer.forbidden_commands (`{entry}`)"
        return None

    return rule


def _entry_line(code: str, entries: list[str], rule: CommandRule | None) -> Finding | None:
    """A line of the code equal to an entry (whitespace and a trailing `;` aside), or one that runs an
    entry's command: for languages other than shell and Python, and for entries of several commands (such
    as the fork bomb) in those two."""
    wanted = {_normal(entry): entry for entry in entries}
    for number, line in enumerate(code.splitlines(), start=1):
        if _normal(line) in wanted:
            return Finding(number, f"is one of computer.forbidden_commands (`{wanted[_normal(line)]}`)")
        if rule is not None:
            for command in parse(line).commands:
                what = rule(unwrap(command.words)) if command.words else None
                if what:
                    return Finding(number, what)
    return None


@functools.lru_cache(maxsize=1024)
def _single_command_shape(entry: str) -> tuple[str, frozenset[str], tuple[str, ...]] | None:
    commands = parse(entry).commands
    if len(commands) != 1 or not unwrap(commands[0].words):
        return None
    return _shape(unwrap(commands[0].words))


def _shape(words: list[str]) -> tuple[str, frozenset[str], tuple[str, ...]]:
    if not words:
        return "", frozenset(), ()
    options, operands = options_and_operands(words[1:])
    program = program_name(words[0])
    synonyms = _SYNONYMS.get(program, {})
    return program, frozenset(synonyms.get(option, option) for option in options), tuple(map(_operand, operands))


def _operand(word: str) -> str:
    if word.startswith("/") and len(word) > 1:
        return posixpath.normpath("/" + word.lstrip("/"))
    return word.rstrip("/") if word.startswith("~") and len(word) > 1 else word


def _normal(line: str) -> str:
    return " ".join(line.split()).rstrip(";").strip()
