"""Repair turns: what went wrong in a run, said to the model as a short, concrete request to fix it.

`diagnose` reads a run's output (a Python traceback, a shell's `[exit code N]` or its error lines, any
`SomethingError: message` line) into a Failure: its kind, message and the failing line of the code.
`request` turns it into the next message to the model: the output, the error in one line, a hint that
follows from the error and what is on disk (the module to import, the name or method that does exist, the
files that are there, the line that reads or writes the file the task names: a small model copies code it
is shown far better than it follows a description), and the ask to reply with the corrected code.
`restates` tells a reply that only repeats the error from an answer. `missing_paths` finds the files and
folders a task asked to create that are not there. `grounded` tells whether an answer says anything the
output said.
"""

from __future__ import annotations

import builtins
import difflib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

MAX_LISTED_FILES = 12


@dataclass(frozen=True)
class Failure:
    language: str
    kind: str  # "NameError", "exit code 2", "error output"
    message: str  # "name 'math' is not defined"
    line_number: int | None = None  # in the code that ran, from 1
    line: str = ""  # that line of the code, stripped

    def summary(self, *, with_line: bool = True) -> str:
        text = f"{self.kind}: {self.message}" if self.message else self.kind
        if self.line and with_line:
            text += f" (line {self.line_number}: `{self.line}`)"
        return text


# -- reading an output ---------------------------------------------------------------------------------

_ERROR_LINE = re.compile(r"^(?:Uncaught )?((?:[A-Za-z_][\w]*\.)*[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Iteration))(?::\s?(.*))?$")
_FRAME = re.compile(r'^\s*(?:Cell In\[\d+\], line (\d+)|File "<(?:string|stdin|ipython-input[^>]*)>", line (\d+)|line (\d+), in <module>)')
_EXIT_CODE = re.compile(r"^\[exit code (-?\d+)\]$")
_SCRIPT_PREFIX = re.compile(r"^(?:\S*/)?(?:run\d+\.sh|bash|sh|zsh): (?:line (\d+): )?")
_SHELL_TROUBLE = re.compile(
    r"(No such file or directory|command not found|Permission denied|cannot access|not a directory|Is a directory|"
    r"syntax error|unexpected EOF|invalid option|unrecognized option|missing operand|cannot stat|File exists)",
    re.IGNORECASE,
)


def _code_line(code: str, number: int | None) -> str:
    lines = code.splitlines()
    if number is None or not 1 <= number <= len(lines):
        return ""
    return lines[number - 1].strip()


def _python_failure(language: str, code: str, lines: list[str]) -> Failure | None:
    error_at = None
    for index in range(len(lines) - 1, -1, -1):
        match = _ERROR_LINE.match(lines[index].strip())
        if match:
            error_at = index
            break
    if error_at is None:
        return None
    before = lines[:error_at]
    traceback_seen = any("Traceback (most recent call last)" in line for line in before)
    frames = [m for m in (_FRAME.match(line) for line in before) if m]
    if not traceback_seen and not frames:
        return None  # a line the code printed itself, not an error it raised
    kind, message = match.group(1), (match.group(2) or "").strip()
    if kind == "SystemExit" and message in ("", "0", "None"):
        return None
    number = None
    if frames:
        last = frames[-1]
        number = int(next(group for group in last.groups() if group))
    return Failure(language, kind.rsplit(".", 1)[-1], message, number if _code_line(code, number) else None,
                   _code_line(code, number))


def _shell_failure(language: str, code: str, lines: list[str]) -> Failure | None:
    exit_code = None
    trouble: list[tuple[str, int | None]] = []
    for line in lines:
        text = line.strip()
        match = _EXIT_CODE.match(text)
        if match:
            exit_code = int(match.group(1))
            continue
        if text.startswith("[") and text.endswith("]"):
            continue  # the computer's own notes (a restarted shell, a timeout)
        if _SHELL_TROUBLE.search(text):
            prefix = _SCRIPT_PREFIX.match(text)
            number = int(prefix.group(1)) if prefix and prefix.group(1) else None
            trouble.append((text[prefix.end():] if prefix else text, number))
    if exit_code in (None, 0) and not trouble:
        return None
    message, number = trouble[-1] if trouble else ("", None)
    if number is None and len(code.strip().splitlines()) == 1:
        number = 1
    kind = f"exit code {exit_code}" if exit_code not in (None, 0) else "error output"
    return Failure(language, kind, message, number if _code_line(code, number) else None, _code_line(code, number))


def diagnose(language: str, code: str, output: str) -> Failure | None:
    """The failure a run's output shows, or None when it looks like it worked."""
    lines = [line for line in (output or "").splitlines() if line.strip()]
    if not lines:
        return None
    if (language or "").lower() in ("shell", "bash", "sh", "zsh"):
        return _shell_failure(language, code, lines)
    return _python_failure(language or "python", code, lines)


# -- hints that follow from the error alone ------------------------------------------------------------

_QUOTED = re.compile(r"'([^']+)'")


def _quoted(text: str) -> list[str]:
    return _QUOTED.findall(text or "")


def _files_here(cwd: Path) -> str:
    try:
        names = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in os.scandir(cwd)
                       if not entry.name.startswith("."))
    except OSError:
        return ""
    if not names:
        return "The current folder is empty."
    shown = ", ".join(names[:MAX_LISTED_FILES]) + (", ..." if len(names) > MAX_LISTED_FILES else "")
    return f"The current folder has: {shown}."


def _closest(word: str, choices: list[str]) -> str | None:
    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.7)  # 0.6 offered `sorted` for `note`
    return found[0] if found else None


def _name_hint(name: str) -> str:
    if name in sys.stdlib_module_names:
        return f"Add `import {name}` at the top."
    public = [n for n in dir(builtins) if not n.startswith("_")]
    close = _closest(name, public)
    if close:
        return f"`{name}` does not exist; did you mean `{close}`?"
    if "_" in name:  # an invented helper such as upper_case(text): Python has methods for that
        method = _closest(name.replace("_", ""), [m for m in dir(str) if not m.startswith("_")])
        if method:
            return f"`{name}` does not exist; use the string method `.{method}()` instead."
    return f"`{name}` does not exist: define it first, or use a built-in function or method instead."


_BUILTIN_TYPES = {"str": str, "list": list, "dict": dict, "int": int, "float": float, "tuple": tuple, "set": set,
                  "bytes": bytes}


def _attribute_hint(message: str) -> str:
    match = re.match(r"'(\w+)' object has no attribute '(\w+)'", message)
    if match and match.group(1) in _BUILTIN_TYPES:
        kind, attribute = match.groups()
        methods = [m for m in dir(_BUILTIN_TYPES[kind]) if not m.startswith("_")]
        close = _closest(attribute, methods) or _closest(attribute.replace("_", ""), methods)
        if close:
            return f"A {kind} has no `{attribute}`; use `.{close}()` instead."
        return f"A {kind} has no `{attribute}`."
    match = re.match(r"module '(\w+)' has no attribute '(\w+)'", message)
    if match:
        return f"The module `{match.group(1)}` has no `{match.group(2)}`."
    return ""


def block(code: str) -> str:
    return f"\n```python\n{code}\n```\n"


def read_code(name: str) -> str:
    return f'print(open("{name}").read())'


def write_code(name: str) -> str:
    return f'with open("{name}", "w") as f:\n    f.write("...")'


def folder_code(name: str) -> str:
    return f'os.makedirs("{name}", exist_ok=True)'


def creation_code(names: list[str]) -> str:
    """Python that creates the files (a name with a suffix) and folders named: what a small model can copy."""
    return "\n".join(write_code(name) if _is_file_name(name) else folder_code(name) for name in names)


def _is_file_name(name: str) -> bool:
    return bool(re.fullmatch(r".*\.[A-Za-z0-9]{1,5}", Path(name).name))


def _file_hint(name: str, task: str, cwd: Path) -> str:
    """For a name the model made up where the task names a file (`data` for data.txt, `file_name`): the line
    that reads the file when it is there, or writes it when the task asks for it."""
    named = named_files(task)
    existing = [n for n in named if (cwd / n).is_file()]
    if not existing:
        stem = name.lower().rstrip("s")
        try:
            existing = sorted(e.name for e in os.scandir(cwd) if e.is_file() and stem and
                              Path(e.name).stem.lower().rstrip("s") == stem)
        except OSError:
            existing = []
    if existing:
        return f"`{name}` does not exist. The file {existing[0]} does; read it like this:{block(read_code(existing[0]))}"
    wanted = [n for n in asked_paths(task) if _is_file_name(n)]
    if wanted:
        return f"`{name}` does not exist. Write the file {wanted[0]} like this:{block(write_code(wanted[0]))}"
    return ""


def hint(failure: Failure, cwd: Path | None = None, task: str = "") -> str:
    """One or two sentences that follow from the error, the working folder and the files the task names."""
    cwd = cwd or Path.cwd()
    kind, message = failure.kind, failure.message
    if kind == "NameError":
        names = _quoted(message)
        if not names:
            return ""
        if names[0] not in sys.stdlib_module_names:
            found = _file_hint(names[0], task, cwd)
            if found:
                return found
        return _name_hint(names[0])
    if kind == "AttributeError":
        return _attribute_hint(message)
    if kind == "ModuleNotFoundError":
        names = _quoted(message)
        module = names[0] if names else "that module"
        return f"`{module}` is not installed here: use Python's standard library instead."
    if kind in ("FileNotFoundError", "IsADirectoryError", "NotADirectoryError") or "No such file" in message:
        return _files_here(cwd)
    if kind in ("SyntaxError", "IndentationError", "TabError"):
        where = f"line {failure.line_number}" if failure.line_number else "the code"
        return f"Fix the syntax of {where}."
    if "command not found" in message:
        command = message.split(":", 1)[0].strip()
        return f"`{command}` is not a command on this machine: use a standard command or Python instead."
    return ""


def request(failure: Failure, output: str, template: str, *, cwd: Path | None = None, repeated: bool = False,
            with_line: bool = True, task: str = "") -> str:
    """The repair request: `template` with {content} (the output) and {error} (the error and a hint); without
    the failing line when the model is not to see its code again (a small model copies what it sees)."""
    summary = failure.summary(with_line=with_line)
    error = f"The code failed with {summary}."
    if repeated:
        error = f"That is the code that already failed with {summary}. Change it."
    extra = hint(failure, cwd, task)
    if extra:
        error += " " + extra
    text = template.replace("{content}", output.strip() or "(no output)")
    return text.replace("{error}", error)


def restates(reply: str, failure: Failure) -> bool:
    """True when a reply without code only repeats the error instead of answering or fixing it."""
    text = (reply or "").lower()
    if not text.strip():
        return True
    if failure.kind.lower() in text and not failure.kind.startswith(("exit code", "error output")):
        return True
    if "traceback" in text:
        return True
    message = failure.message.lower().strip()
    if message and (message in text or difflib.SequenceMatcher(None, message, text).find_longest_match(
            0, len(message), 0, len(text)).size >= min(24, len(message))):
        return True
    return any(phrase in text for phrase in ("not defined", "no such file", "command not found", "has no attribute",
                                             "syntax error", "error occurred", "an error"))


# -- the files a task asked for ------------------------------------------------------------------------

_CREATE = re.compile(r"\b(create|creates|creating|write|writes|writing|save|saves|saving|make|makes|making|"
                     r"generate|store|put|touch|mkdir)\b", re.IGNORECASE)
_NAMED = re.compile(
    r"\b(file|folder|directory|dir)\s+(?:named|called)\s+[`'\"]?([\w][\w.\-/]*[\w])[`'\"]?", re.IGNORECASE)
_FILE_WITH_SUFFIX = re.compile(r"(?<![\w/.])[`'\"]?([\w][\w\-/]*\.[A-Za-z0-9]{1,5})[`'\"]?(?![\w/])")


def named_files(task: str) -> list[str]:
    """The file names (with a suffix: notes.txt, src/main.py) a task mentions, in order."""
    seen: list[str] = []
    for match in _FILE_WITH_SUFFIX.finditer(task or ""):
        name = match.group(1)
        if name not in seen and not re.fullmatch(r"\d+(\.\d+)?", name):
            seen.append(name)
    return seen


def asked_paths(task: str) -> list[str]:
    """Names of files and folders a task asks to create ("create a file named hello.txt", "a folder called
    reports"); none when it asks for nothing to be created."""
    if not _CREATE.search(task or ""):
        return []
    names = [match.group(2).rstrip(".") for match in _NAMED.finditer(task)]
    return list(dict.fromkeys(n for n in names + named_files(task) if not re.fullmatch(r"\d+(\.\d+)?", n)))


def _exists_below(cwd: Path, name: str, depth: int = 3) -> bool:
    if (cwd / name).exists():
        return True
    base = Path(name).name
    try:
        for root, folders, files in os.walk(cwd):
            if len(Path(root).relative_to(cwd).parts) >= depth:
                folders[:] = []
            folders[:] = [f for f in folders if not f.startswith(".")]
            if base in files or base in folders:
                return True
    except (OSError, ValueError):
        return False
    return False


def missing_paths(task: str, cwd: Path | None = None) -> list[str]:
    """The files or folders the task asked to create that are not in (or below) the working folder."""
    cwd = cwd or Path.cwd()
    return [name for name in asked_paths(task) if not _exists_below(cwd, name)]


# -- answers -----------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[A-Za-z]{3,}|\d+(?:\.\d+)?")


def _tokens(text: str) -> set[str]:
    return set(_TOKEN.findall(text or ""))  # case kept: PYTHON is news when the task said python


def grounded(answer: str, output: str, known: str = "") -> bool:
    """Whether an answer says anything that only the output said (a number or word of it that is not in
    `known`: the task and the code that printed it); True when the output says nothing new."""
    said = _tokens(output) - _tokens(known)
    if not said:
        return True
    return bool(said & _tokens(answer))
