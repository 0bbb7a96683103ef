"""Precheck: what can be told about a reply's code before it runs, from the code and the task alone.

A small model decoding greedily often writes code that cannot work: Python that does not parse, a name it
never defined (`file_name`, `data` for data.txt), or code that leaves out what the task names (the file,
the quoted text, the numbers). `problems` lists those for one block, `reply_problems` for a whole reply,
so the agent can sample a few alternatives and run the one with the fewest instead of code that is bound
to fail. `overwrites` names the files the task only names that the code would write over.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from oi_local.agent import repair

_QUOTED = re.compile(r"'([^'\n]{1,80})'|\"([^\"\n]{1,80})\"")
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?![\w.]*\w)")
_BUILTINS = frozenset(dir(builtins))
# The sampled replies' temperature: far enough from greedy to leave a wrong idea; seeded, so a run repeats.
SAMPLE_TEMPERATURE = 0.8
KERNEL_NAMES = frozenset({"display", "get_ipython", "In", "Out", "_", "computer"})  # IPython's, the computer API


@dataclass(frozen=True)
class Literals:
    """What a task names that its code is expected to use."""

    files: tuple[str, ...]
    texts: tuple[str, ...]  # quoted in the task
    numbers: tuple[str, ...]


def task_literals(task: str) -> Literals:
    texts = tuple(dict.fromkeys(a or b for a, b in _QUOTED.findall(task or "")))
    files = tuple(n for n in repair.named_files(task) if n not in texts)
    without_quotes = _QUOTED.sub(" ", task or "")
    numbers = tuple(dict.fromkeys(m for m in _NUMBER.findall(without_quotes)
                                  if not any(m in f for f in files)))
    return Literals(files, texts, numbers)


def _bound_names(tree: ast.AST) -> set[str]:
    """Every name the code binds anywhere (assignments, loops, with, imports, defs, arguments, except)."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bound.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
        elif isinstance(node, ast.MatchAs) and node.name:
            bound.add(node.name)
    return bound


def _parsed(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError):
        return None


def _undefined(tree: ast.AST, defined: set[str]) -> list[str]:
    """Names the code reads that are not in `defined`, in order of first use."""
    missing: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in defined:
            if node.id not in missing:
                missing.append(node.id)
    return missing


def _resolve(node: ast.expr, modules: frozenset[str] | set[str]):
    """The standard-library function a call names (`len`, `os.path.getsize`), or None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    parts.reverse()
    if len(parts) == 1:
        return getattr(builtins, parts[0], None)
    target = sys.modules.get(parts[0]) if parts[0] in modules and parts[0] in sys.stdlib_module_names else None
    if target is None:
        return None  # never imported for a check: importing a module can do things (antigravity opens a browser)
    for part in parts[1:]:
        target = getattr(target, part, None)
        if target is None:
            return None
    return target


def call_problems(code: str, modules: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Calls that fail whatever the data: a standard function given the wrong arguments (`os.path.getsize()`),
    and the None that print() returns used as a value (`print(x) + "..."`)."""
    tree = _parsed(code)
    return [] if tree is None else _call_problems(tree, _bound_names(tree), modules)


def _call_problems(tree: ast.AST, bound: set[str], modules: frozenset[str] | set[str]) -> list[str]:
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.BinOp, ast.Attribute, ast.Subscript)):
            operands = [node.left, node.right] if isinstance(node, ast.BinOp) else [node.value]
            if any(isinstance(o, ast.Call) and isinstance(o.func, ast.Name) and o.func.id == "print" for o in operands):
                found.append("print() returns None, so its result cannot be used")
        if not isinstance(node, ast.Call) or any(isinstance(a, ast.Starred) for a in node.args) or \
                any(k.arg is None for k in node.keywords):
            continue
        root = node.func
        while isinstance(root, ast.Attribute):
            root = root.value
        if isinstance(root, ast.Name) and root.id in bound:
            continue  # the code's own name, not the library's
        function = _resolve(node.func, modules)
        if function is None or not callable(function) or inspect.isclass(function):
            continue
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):
            continue
        try:
            signature.bind(*node.args, **{k.arg: k.value for k in node.keywords})
        except TypeError as error:
            found.append(f"{ast.unparse(node.func)}(): {error}")
    return list(dict.fromkeys(found))


def _uses_number(code: str, number: str) -> bool:
    """The number, or its neighbour (range(1, 101) for "1 to 100"), appears in the code."""
    found = set(_NUMBER.findall(code))
    if number in found:
        return True
    if "." in number:
        return False
    value = int(number)
    return str(value + 1) in found or str(value - 1) in found


_FILE_LITERAL = re.compile(r"""['"]([\w\-./]+\.[A-Za-z0-9]{1,5})['"]""")


def _file_problems(code: str, task: str, cwd: Path) -> list[str]:
    """File names in the code that the task does not name, that are not here and that the task does not ask
    for (copied from an example: `report.pdf`); and a write to a file the task named to be read."""
    named = set(repair.named_files(task))
    asked = set(repair.asked_paths(task))
    found = []
    for name in dict.fromkeys(_FILE_LITERAL.findall(code)):
        if name not in named and name not in asked and not (cwd / name).exists():
            found.append(f"{name} is not here")
    found.extend(f"it would overwrite {name}" for name in overwrites(code, task, cwd))
    return found


def overwrites(code: str, task: str, cwd: Path) -> list[str]:
    """Files here that the task names without asking to write them, and that the code opens for writing."""
    asked = set(repair.asked_paths(task))
    return [name for name in repair.named_files(task) if name not in asked and (cwd / name).is_file() and
            re.search(r"open\(\s*['\"]" + re.escape(name) + r"['\"]\s*,\s*(?:mode\s*=\s*)?['\"][wa]", code)]


def _code_problems(language: str, code: str, task: str, known: frozenset[str] | set[str],
                   cwd: Path) -> tuple[list[str], set[str]]:
    """One block's problems, and the names it defines (Python that parses is read once for both)."""
    found: list[str] = []
    bound: set[str] = set()
    if (language or "python").lower() == "python":
        tree = _parsed(code)
        if tree is None:
            found.append("it is not valid Python")
        else:
            bound = _bound_names(tree)
            found.extend(f"`{name}` is not defined" for name in _undefined(tree, bound | _BUILTINS | set(known)))
            found.extend(_call_problems(tree, bound, known))
    return found + _file_problems(code, task, cwd), bound


def _left_out(code: str, task: str) -> list[str]:
    """What the task names that the code does not use."""
    literals = task_literals(task)
    found = [f"it does not use {name}" for name in literals.files if name not in code]
    found.extend(f"it does not make {name}" for name in repair.asked_paths(task)
                 if name not in literals.files and name not in code)
    found.extend(f'it does not use "{text}"' for text in literals.texts if text not in code)
    found.extend(f"it does not use {number}" for number in literals.numbers if not _uses_number(code, number))
    return found


def problems(language: str, code: str, task: str, known: frozenset[str] | set[str] = frozenset(),
             cwd: Path | None = None) -> list[str]:
    """What makes this code unlikely to do the task, in words (empty: nothing seen)."""
    return _code_problems(language, code, task, known, cwd or Path.cwd())[0] + _left_out(code, task)


def blocks(messages: list[dict]) -> list[tuple[str, str]]:
    """(language, code) of a reply's non-empty code blocks."""
    return [(m.get("format") or "python", str(m["content"])) for m in messages
            if m.get("type") == "code" and str(m.get("content") or "").strip()]


def reply_problems(messages: list[dict], task: str, known: frozenset[str] | set[str] = frozenset(),
                   cwd: Path | None = None) -> list[str]:
    """The problems of a reply's code (fewer is better): each block's own, where a block may use what the
    blocks before it defined, and what the task names that no block uses."""
    found: list[str] = []
    known, cwd = set(known), cwd or Path.cwd()
    code = blocks(messages)
    for language, text in code:
        block_problems, defined = _code_problems(language, text, task, known, cwd)
        found.extend(block_problems)
        known |= defined
    return found + (_left_out("\n".join(text for _, text in code), task) if code else [])


def defined_names(code: str) -> set[str]:
    """The names Python code defines (none when it does not parse)."""
    tree = _parsed(code)
    return set() if tree is None else _bound_names(tree)
