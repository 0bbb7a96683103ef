"""The destructive classes of shell commands: recursive removal of / or a home folder or a system folder (or
everything in one), writes to a disk device (dd, redirections, mkfs, wipefs, shred, partitioners), fork
bombs, and recursive permission or owner changes of the system.

A command is read as what really runs (shell_commands.unwrap), options normalised (-rf, -fr, -r -f, -R,
--recursive, options after the operands as GNU tools take them), paths as paths.protected() sees them, with
the working directory followed through `cd` so that `cd / && rm -rf *` is seen for what it is.
"""

from __future__ import annotations

from collections.abc import Callable

from oi_local.computer.destructive.findings import MAX_DEPTH, CommandRule, Finding
from oi_local.computer.destructive.paths import Place, home, is_block_device, protected, resolve
from oi_local.computer.destructive.shell_commands import (
    inner_code,
    options_and_operands,
    program_name,
    unwrap,
)
from oi_local.computer.destructive.shell_syntax import Command, Token, parse, split_commands

_WRITING_REDIRECTIONS = frozenset({">", ">>", ">|", "&>", "&>>", "<>"})
_FORMATTERS = ("mkfs", "mke2fs", "mkswap", "mkntfs", "mkdosfs", "mkexfatfs", "newfs", "wipefs", "blkdiscard")
_PARTITIONERS = frozenset({"fdisk", "sfdisk", "gdisk", "sgdisk", "cfdisk", "parted"})
_READ_ONLY_PARTITIONING = frozenset({"-l", "--list", "-d", "--dump", "-J", "--json", "-p", "--print", "print"})
_DISKUTIL_ERASING = ("erase", "zero", "random", "secureerase", "partition", "reformat", "delete")
_FIND_EXEC = frozenset({"-exec", "-execdir", "-ok", "-okdir"})
# find's words that only steer the walk; any other -word is a test that narrows what is deleted
_FIND_STEERING = frozenset({
    "-delete", "-exec", "-execdir", "-ok", "-okdir", "-depth", "-d", "-mindepth", "-maxdepth", "-mount", "-xdev",
    "-L", "-P", "-H", "-follow", "-print", "-print0", "-ignore_readdir_race", "-noleaf", "-true",
})


def check_shell(code: str, cwd: str | None = None, depth: int = 0, also: CommandRule | None = None) -> Finding | None:
    """The first destructive command in shell `code`, or None. `cwd` is the folder the code starts in, when
    known; `also` is a further rule for every command (the words that really run -> what it does, or None)."""
    if depth > MAX_DEPTH:
        return None
    script = parse(code)
    bomb = _fork_bomb(script.tokens)
    if bomb is not None:
        return bomb
    for line, text in script.substitutions:
        found = check_shell(text, cwd, depth + 1, also)
        if found is not None:
            return found.at(line)
    previous: Command | None = None
    for command in script.commands:
        found = _check_command(command, previous, cwd, depth, also)
        if found is not None:
            return found
        cwd = _after_cd(unwrap(command.words), cwd)
        previous = command
    return None


def _check_command(
    command: Command, previous: Command | None, cwd: str | None, depth: int, also: CommandRule | None
) -> Finding | None:
    for operator, target in command.redirections:
        if operator in _WRITING_REDIRECTIONS and is_block_device(target):
            return Finding(command.line, f"writes over the disk device {target}")
    words = unwrap(command.words)
    inner = inner_code(command, words, previous)
    if inner is not None:
        found = _check_inner(*inner, cwd, depth, also)
        if found is not None:
            return found.at(command.line)
    if not words:
        return None
    what = _what_it_does(program_name(words[0]), words[1:], cwd) or (also(words) if also else None)
    return Finding(command.line, what) if what else None


def _check_inner(language: str, code: str, cwd: str | None, depth: int, also: CommandRule | None) -> Finding | None:
    if language == "python":
        from oi_local.computer.destructive.python import check_python

        return check_python(code, cwd, depth + 1, also)
    return check_shell(code, cwd, depth + 1, also)


def _what_it_does(name: str, arguments: list[str], cwd: str | None) -> str | None:
    rule = _RULES.get(name)
    if rule is not None:
        return rule(arguments, cwd)
    if name.startswith(_FORMATTERS):
        return _formats(arguments)
    if name in _PARTITIONERS:
        return _partitions(arguments)
    return None


def _after_cd(words: list[str], cwd: str | None) -> str | None:
    if not words or program_name(words[0]) not in ("cd", "pushd"):
        return cwd
    operands = [word for word in words[1:] if word == "-" or not word.startswith("-")]
    if not operands:
        return home()
    return None if operands[0] == "-" else resolve(operands[0], cwd)


# -- the rules, one per program -------------------------------------------------------------------------

def _rm(arguments: list[str], cwd: str | None) -> str | None:
    options, operands = options_and_operands(arguments)
    if "--no-preserve-root" in options:
        return "switches off rm's own refusal to remove / (--no-preserve-root)"
    recursive = bool(options & {"-r", "-R", "--recursive"})
    for operand in operands:
        place = protected(operand, cwd)
        if place is not None and (recursive or place.everything):
            return f"removes {place}" + (" recursively" if recursive else "")
    return None


def _mv(arguments: list[str], cwd: str | None) -> str | None:
    options, operands = options_and_operands(arguments)
    sources = operands if options & {"-t", "--target-directory"} else operands[:-1]
    for source in sources:
        place = protected(source, cwd)
        if place is not None:
            return f"moves {place} away"
    return None


def _find(arguments: list[str], cwd: str | None) -> str | None:
    """`find` that deletes all it walks (-delete, -exec rm) from a protected folder, with no test narrowing it."""
    options = ("-L", "-P", "-H")
    starts = []
    for word in arguments:
        if word.startswith(("-", "(", "!")) and word not in options:
            break
        if word not in options:
            starts.append(word)
    rest = arguments[len(starts):]
    deletes = "-delete" in rest or any(
        word in _FIND_EXEC and index + 1 < len(rest) and program_name(rest[index + 1]) == "rm"
        for index, word in enumerate(rest)
    )
    if not deletes or _find_tests(rest):
        return None
    for start in starts or ["."]:
        place = protected(start, cwd)
        if place is not None:
            return f"deletes {Place(place.path, place.kind, everything=True)} (find)"
    return None


def _find_tests(expression: list[str]) -> list[str]:
    """The tests (-name, -type, ...) in find's expression, the words of -exec commands aside."""
    tests, in_command = [], False
    for word in expression:
        if in_command:
            in_command = word not in (";", "+")
        elif word in _FIND_EXEC:
            in_command = True
        elif word.startswith("-") and word not in _FIND_STEERING:
            tests.append(word)
    return tests


def _changes_access(verb: str) -> Callable[[list[str], str | None], str | None]:
    def rule(arguments: list[str], cwd: str | None) -> str | None:
        options, operands = options_and_operands(arguments)
        recursive = bool(options & {"-R", "--recursive"})
        for operand in operands:
            place = protected(operand, cwd)
            if place is None or not place.top_level:
                continue  # a home folder, /usr/local, ...: owners and modes are set there on purpose
            if recursive or place.kind == "root":
                return f"changes the {verb} of {place}" + (" recursively" if recursive else "")
        return None

    return rule


def _dd(arguments: list[str], cwd: str | None) -> str | None:
    for word in arguments:
        if word.startswith("of=") and is_block_device(word[3:]):
            return f"writes over the disk device {word[3:]}"
    return None


def _writes_operands(last_only: bool) -> Callable[[list[str], str | None], str | None]:
    def rule(arguments: list[str], cwd: str | None) -> str | None:
        _, operands = options_and_operands(arguments)
        for operand in operands[-1:] if last_only else operands:
            if is_block_device(operand):
                return f"writes over the disk device {operand}"
        return None

    return rule


def _formats(arguments: list[str]) -> str | None:
    _, operands = options_and_operands(arguments)
    device = next((operand for operand in operands if operand.startswith("/dev/")), None)
    return f"formats or wipes the device {device}" if device else None


def _partitions(arguments: list[str]) -> str | None:
    if _READ_ONLY_PARTITIONING & set(arguments):
        return None
    device = next((word for word in arguments if is_block_device(word)), None)
    return f"repartitions the disk device {device}" if device else None


def _diskutil(arguments: list[str], cwd: str | None) -> str | None:
    verb = next((word for word in arguments if not word.startswith("-")), "")
    if verb == "apfs":
        verb = next((word for word in arguments[1:] if not word.startswith("-")), "")
    return f"erases or repartitions a disk (diskutil {verb})" if verb.lower().startswith(_DISKUTIL_ERASING) else None


_RULES: dict[str, Callable[[list[str], str | None], str | None]] = {
    "rm": _rm,
    "mv": _mv,
    "find": _find,
    "chmod": _changes_access("permissions"),
    "chown": _changes_access("owner"),
    "chgrp": _changes_access("group"),
    "dd": _dd,
    "tee": _writes_operands(last_only=False),
    "shred": _writes_operands(last_only=False),
    "truncate": _writes_operands(last_only=False),
    "cp": _writes_operands(last_only=True),
    "diskutil": _diskutil,
}


# -- fork bombs -----------------------------------------------------------------------------------------

def _fork_bomb(tokens: list[Token]) -> Finding | None:
    """A function whose body runs itself twice, piped or in the background: `:(){ :|:& };:` and its
    renamed kin (`bomb() { bomb | bomb & }; bomb`, `function f { f & f & }`)."""
    for index, token in enumerate(tokens):
        name, body_start = _function_definition(tokens, index)
        if name is None:
            continue
        calls = [command for command in split_commands(_body(tokens, body_start)) if _runs(command, name)]
        if len(calls) >= 2 and any(call.ended_by in ("|", "|&", "&") for call in calls):
            return Finding(token.line, "is a fork bomb: a function that starts copies of itself until no process "
                                       "can be started")
    return None


def _runs(command: Command, name: str) -> bool:
    words = unwrap(command.words)
    return bool(words) and program_name(words[0]) == name


def _function_definition(tokens: list[Token], index: int) -> tuple[str | None, int]:
    token = tokens[index]
    if token.operator:
        return None, 0
    following = [t.text if t.operator else None for t in tokens[index + 1: index + 3]]
    if following == ["(", ")"]:
        return token.text, index + 3
    if token.text == "function" and index + 1 < len(tokens) and not tokens[index + 1].operator:
        start = index + 2
        if [t.text for t in tokens[start: start + 2]] == ["(", ")"]:
            start += 2
        return tokens[index + 1].text, start
    return None, 0


def _body(tokens: list[Token], start: int) -> list[Token]:
    """The tokens of a function body from `start`: `{ ... }` (or `( ... )`), newlines before it skipped."""
    while start < len(tokens) and tokens[start].operator and tokens[start].text == "\n":
        start += 1
    if start >= len(tokens):
        return []
    opening = tokens[start]
    close, open_text = ("}", "{") if not opening.operator and opening.text == "{" else (")", "(")
    if opening.text != open_text:
        return []
    depth, body = 0, []
    for token in tokens[start:]:
        if token.text == open_text:
            depth += 1
        elif token.text == close:
            depth -= 1
            if depth == 0:
                break
        body.append(token)
    return body[1:]
