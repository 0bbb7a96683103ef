"""A simple command seen as what actually runs: wrappers taken off, and the code it hands to a shell or to
Python found.

`sudo -n rm -rf /`, `env X=1 nice -n 5 rm -rf /`, `xargs rm -rf` and `/bin/rm` all run `rm`; `bash -c "..."`,
`sh <<EOF`, `echo ... | sh`, `eval ...`, `su -c "..."` and `python3 -c "..."` run code that is read in turn.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence

from oi_local.computer.destructive.shell_syntax import Command, parse

# Programs that run the rest of their words as a command, with those of their options that take a value.
_WRAPPERS: dict[str, frozenset[str]] = {
    "sudo": frozenset({
        "-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-T", "-U", "-R", "--user", "--group", "--close-from",
        "--chdir", "--host", "--prompt", "--role", "--type", "--command-timeout", "--other-user", "--chroot",
    }),
    "doas": frozenset({"-u", "-C"}),
    "env": frozenset({"-u", "--unset", "-C", "--chdir"}),
    "nice": frozenset({"-n", "--adjustment"}),
    "ionice": frozenset({"-c", "-n", "--class", "--classdata"}),
    "nohup": frozenset(), "setsid": frozenset(), "builtin": frozenset(), "unbuffer": frozenset(),
    "busybox": frozenset(), "command": frozenset(),
    "exec": frozenset({"-a"}),
    "time": frozenset({"-f", "-o", "--format", "--output"}),
    "timeout": frozenset({"-s", "-k", "--signal", "--kill-after"}),
    "stdbuf": frozenset({"-i", "-o", "-e", "--input", "--output", "--error"}),
    "xargs": frozenset({
        "-a", "-d", "-E", "-I", "-L", "-n", "-P", "-s", "--arg-file", "--delimiter", "--eof", "--replace",
        "--max-lines", "--max-args", "--max-procs", "--max-chars", "--process-slot-var",
    }),
    "caffeinate": frozenset({"-t", "-w"}),
    "watch": frozenset({"-n", "--interval"}),
    "strace": frozenset({"-o", "-e", "-p", "-s", "-u", "-E", "-P", "-a", "-b", "-I", "-S", "-X"}),
    "chroot": frozenset({"--userspec", "--groups"}),
    "taskset": frozenset(),
}
_POSITIONALS_FIRST = {"timeout": 1, "chroot": 1, "taskset": 1}  # words before the command (duration, ...)
_KEYWORDS = frozenset({"{", "}", "!", "if", "then", "elif", "else", "fi", "while", "until", "do", "done"})
_NOT_A_COMMAND = frozenset({"for", "select", "case", "esac", "in", "function"})
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=")
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "yash"})
_PYTHON = re.compile(r"(python|pypy|ipython)(\d+(\.\d+)?)?")
_GNU_PREFIXED = frozenset({"rm", "mv", "chmod", "chown", "chgrp", "dd", "shred", "find", "truncate", "tee"})


def program_name(word: str) -> str:
    """The program a command word runs: `/bin/rm`, `\\rm` and (Homebrew's) `grm` all run rm."""
    name = posixpath.basename(word)
    return name[1:] if name.startswith("g") and name[1:] in _GNU_PREFIXED else name


def unwrap(words: Sequence[str]) -> list[str]:
    """The words of the command that really runs, wrappers, keywords and variable assignments taken off
    (an empty list when nothing runs, as for `command -v rm` or `for x in ...`)."""
    words = list(words)
    while words:
        first = words[0]
        name = program_name(first)
        if first in _KEYWORDS or _ASSIGNMENT.match(first):
            words = words[1:]
        elif first in _NOT_A_COMMAND:
            return []
        elif name in _WRAPPERS:
            if name == "command" and any(word in ("-v", "-V") for word in words[1:2]):
                return []
            words = _after_options(name, words[1:])
        else:
            break
    return words


def _after_options(wrapper: str, words: list[str]) -> list[str]:
    value_options = _WRAPPERS[wrapper]
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--":
            index += 1
            break
        if not word.startswith("-") or word == "-":
            break
        if wrapper == "env" and (word in ("-S", "--split-string") or word.startswith("--split-string=")):
            text = word.partition("=")[2] if "=" in word else (words[index + 1] if index + 1 < len(words) else "")
            rest = words[index + (1 if "=" in word else 2):]
            commands = parse(text).commands
            return (commands[0].words if commands else []) + rest
        takes_value = word in value_options or (
            not word.startswith("--") and len(word) > 2 and f"-{word[-1]}" in value_options
        )
        index += 2 if takes_value else 1
    return words[index + _POSITIONALS_FIRST.get(wrapper, 0):]


def inner_code(command: Command, words: list[str], previous: Command | None) -> tuple[str, str] | None:
    """("shell" or "python", code) that this command hands to a shell or to Python, when the code is in the
    command itself: an argument, a here-document or here-string, or what `echo`/`printf` pipe into it."""
    if not words:
        return None
    name, arguments = program_name(words[0]), words[1:]
    if name in SHELLS:
        script = _option_value(arguments, "c")
        if script is not None:
            return "shell", script
        if not _operands(arguments, "o"):
            text = _stdin_text(command, previous)
            return ("shell", text) if text else None
    elif name == "eval":
        return "shell", " ".join(arguments)
    elif name in ("su", "runuser"):
        script = _option_value(arguments, "c", long_name="--command")
        return ("shell", script) if script is not None else None
    elif _PYTHON.fullmatch(name):
        code = _option_value(arguments, "c")
        if code is not None:
            return "python", code
        operands = _operands(arguments, "WXm")
        if not operands or operands[0] == "-":
            text = _stdin_text(command, previous)
            return ("python", text) if text else None
    return None


def _option_value(arguments: list[str], letter: str, long_name: str = "") -> str | None:
    """The word after option -<letter> (alone or ending a cluster such as -ec), or after `long_name`."""
    for index, word in enumerate(arguments):
        if word == "--":
            return None
        if long_name and word.startswith(long_name + "="):
            return word.partition("=")[2]
        if word == long_name or (word.startswith("-") and not word.startswith("--") and word.endswith(letter)):
            return arguments[index + 1] if index + 1 < len(arguments) else ""
    return None


def _operands(arguments: list[str], value_letters: str) -> list[str]:
    """The words that are not options (a script file, `-` for stdin); options in `value_letters` take a value."""
    operands, skip = [], False
    for word in arguments:
        if skip:
            skip = False
        elif word == "-" or not word.startswith(("-", "+")):
            operands.append(word)
        elif len(word) == 2 and word[1] in value_letters:
            skip = True
    return operands


def _stdin_text(command: Command, previous: Command | None) -> str | None:
    if command.stdin_text:
        return command.stdin_text
    if previous is None or previous.ended_by not in ("|", "|&"):
        return None
    words = unwrap(previous.words)
    if not words:
        return None
    name = program_name(words[0])
    if name in ("echo", "printf"):
        return " ".join(word for word in words[1:] if word not in ("-n", "-e", "-E")) + "\n"
    if name == "cat" and previous.stdin_text:
        return previous.stdin_text
    return None


def options_and_operands(arguments: list[str]) -> tuple[set[str], list[str]]:
    """Options normalised (-rf -> {-r, -f}; --long=value -> --long) and the operands, GNU style (options may
    follow operands; `--` ends the options)."""
    options: set[str] = set()
    operands: list[str] = []
    ended = False
    for word in arguments:
        if ended or word == "-" or not word.startswith("-"):
            operands.append(word)
        elif word == "--":
            ended = True
        elif word.startswith("--"):
            options.add(word.partition("=")[0])
        else:
            options.update(f"-{letter}" for letter in word[1:])
    return options, operands
