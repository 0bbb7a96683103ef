"""The destructive classes in Python code, read with ast (nothing is run or imported).

Caught: shutil.rmtree, os.remove/unlink/rmdir/removedirs and pathlib's rmdir/unlink of a protected path;
shell commands handed to os.system, os.popen, subprocess.*, asyncio's subprocess functions, pty.spawn and
the os.exec* family (as a string or a list) and to IPython's `!cmd`, `%system` and `%%bash`, read with the
shell rules; `open()` of a disk device for writing; os.fork() in an endless loop. Arguments count when they
are literal or simply computed: string and f-string literals, +, %, str.format, os.path.join/expanduser/
abspath, Path(...), Path.home(), `/`, os.environ['HOME'], os.getenv('HOME'), and names assigned such values
earlier. Anything else is unknown and let through. Code that does not parse is let through too: it fails
before anything of it runs.
"""

from __future__ import annotations

import ast
import posixpath
import re
import shlex
import warnings

from oi_local.computer.destructive.findings import MAX_DEPTH, CommandRule, Finding
from oi_local.computer.destructive.paths import is_block_device, protected
from oi_local.computer.destructive.shell import check_shell

_UNKNOWN = "${__unknown__}"  # an unknown part of a string: a variable to the shell rules, never a known path
_REMOVERS = {"shutil.rmtree": " recursively", "os.remove": "", "os.unlink": "", "os.rmdir": "", "os.removedirs": ""}
_SHELL_RUNNERS = frozenset({
    "os.system", "os.popen", "subprocess.run", "subprocess.call", "subprocess.check_call", "subprocess.check_output",
    "subprocess.Popen", "subprocess.getoutput", "subprocess.getstatusoutput", "asyncio.create_subprocess_shell",
    "pty.spawn",
})
_EXEC_WITH_LIST = frozenset({"os.execv", "os.execve", "os.execvp", "os.execvpe"})
_EXEC_WITH_ARGUMENTS = frozenset({"os.execl", "os.execle", "os.execlp", "os.execlpe"})
_PATH_TYPES = frozenset({"pathlib.Path", "pathlib.PurePath", "pathlib.PosixPath", "pathlib.PurePosixPath"})
_SAME_PATH = frozenset({
    "os.path.expanduser", "os.path.expandvars", "os.path.abspath", "os.path.realpath", "os.path.normpath",
    "os.fspath", "str",
})
_HOME_CALLS = frozenset({"pathlib.Path.home", "os.getenv", "os.environ.get"})
_SHELL_MAGIC = re.compile(r"(\s*)(?:[A-Za-z_]\w*\s*=\s*)?(?:!!?|%(?:system|sx)\b)(.*)")
_SHELL_CELL_MAGICS = frozenset({"bash", "sh", "system", "script"})


def check_python(code: str, cwd: str | None = None, depth: int = 0, also: CommandRule | None = None) -> Finding | None:
    """The first destructive call in Python `code` (IPython syntax included), or None; `also` is a further
    rule for the shell commands the code runs (see shell.check_shell)."""
    if depth > MAX_DEPTH:
        return None
    source, shell_parts = _without_ipython_shell(code)
    for line, shell_code in shell_parts:
        found = check_shell(shell_code, cwd, depth + 1, also)
        if found is not None:
            return found.at(line + found.line - 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarnings are the kernel's to show, when the code runs
            tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    reader = _Reader(cwd, depth, _aliases(tree), also)
    reader.visit(tree)
    return reader.found


def _without_ipython_shell(code: str) -> tuple[str, list[tuple[int, str]]]:
    """The code with IPython's shell lines and magics made `pass` (so that ast reads the rest), and the shell
    code they hold with the line it starts on."""
    lines = code.split("\n")
    first = lines[0].strip().split()
    if first and first[0].startswith("%%"):
        if first[0][2:] in _SHELL_CELL_MAGICS:
            return "", [(2, "\n".join(lines[1:]))]
        lines[0] = ""
    shell = []
    for index, line in enumerate(lines):
        match = _SHELL_MAGIC.fullmatch(line)
        if match:
            shell.append((index + 1, match.group(2)))
            lines[index] = match.group(1) + "pass"
        elif line.lstrip().startswith(("%", "?")):
            lines[index] = line[: len(line) - len(line.lstrip())] + "pass"
    return "\n".join(lines), shell


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> what it was imported as (`import os.path as p` -> p: os.path)."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    head = alias.name.split(".")[0]
                    aliases[head] = head
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if alias.name == "*":
                    for known in (*_REMOVERS, *_SHELL_RUNNERS, *_EXEC_WITH_LIST, *_EXEC_WITH_ARGUMENTS, *_PATH_TYPES):
                        module, _, name = known.rpartition(".")
                        if module == node.module:
                            aliases.setdefault(name, known)
                else:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


class _Reader(ast.NodeVisitor):
    def __init__(self, cwd: str | None, depth: int, aliases: dict[str, str], also: CommandRule | None) -> None:
        self.cwd = cwd
        self.also = also
        self.depth = depth
        self.aliases = aliases
        self.values: dict[str, str | tuple[str, ...]] = {}
        self.found: Finding | None = None

    # -- walking --------------------------------------------------------------------------------------

    def visit(self, node: ast.AST) -> None:
        if self.found is None:
            super().visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        value = self._words(node.value) or self._value(node.value)
        for target in node.targets:
            self._bind(target, value)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
            self._bind(node.target, self._value(node.value))

    def visit_For(self, node: ast.For) -> None:
        self._bind(node.target, None)
        self.generic_visit(node)

    def visit_While(self, node: ast.While) -> None:
        endless = isinstance(node.test, ast.Constant) and bool(node.test.value)
        if endless and any(
            isinstance(inner, ast.Call) and self._name(inner.func) in ("os.fork", "os.forkpty")
            for statement in node.body for inner in ast.walk(statement)
        ):
            self.found = Finding(node.lineno, "is a fork bomb: os.fork() in an endless loop starts processes until "
                                              "none can be started")
            return
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        what = self._what_it_does(node)
        if what is not None:
            self.found = what if isinstance(what, Finding) else Finding(node.lineno, what)
            return
        self.generic_visit(node)

    def _bind(self, target: ast.AST, value: str | tuple[str, ...] | None) -> None:
        if isinstance(target, ast.Name):
            if value is None:
                self.values.pop(target.id, None)
            else:
                self.values[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._bind(element, None)

    # -- what a call does -------------------------------------------------------------------------------

    def _what_it_does(self, node: ast.Call) -> str | Finding | None:
        name = self._name(node.func)
        if name in _REMOVERS:
            return self._removes(self._argument(node, 0, "path"), _REMOVERS[name])
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("rmdir", "unlink"):
            return self._removes(node.func.value, "")
        if name in _SHELL_RUNNERS:
            return self._runs(self._argument(node, 0, "args", "cmd", "command", "argv"), node.lineno)
        if name in _EXEC_WITH_LIST:
            return self._runs(self._argument(node, 1, "args"), node.lineno)
        if name in _EXEC_WITH_ARGUMENTS or name == "asyncio.create_subprocess_exec":
            start = 0 if name == "asyncio.create_subprocess_exec" else 1
            return self._runs(ast.List(elts=list(node.args[start:])), node.lineno)
        if name in ("exec", "eval", "compile") and node.args:
            code = self._value(node.args[0])
            found = check_python(code, self.cwd, self.depth + 1, self.also) if isinstance(code, str) else None
            return found.at(node.lineno) if found is not None else None
        if name in ("open", "io.open") or (isinstance(node.func, ast.Attribute) and node.func.attr in (
            "write_bytes", "write_text", "open",
        )):
            return self._writes_device(node, name)
        return None

    def _removes(self, path_node: ast.AST | None, how: str) -> str | None:
        path = self._value(path_node) if path_node is not None else None
        if not isinstance(path, str):
            return None
        place = protected(path, self.cwd) or (f"the disk device {path}" if is_block_device(path) else None)
        return f"removes {place}{how}" if place else None

    def _runs(self, command_node: ast.AST | None, line: int) -> Finding | None:
        if command_node is None:
            return None
        command = self._words(command_node) or self._value(command_node)
        if isinstance(command, tuple):
            command = shlex.join(command)
        if not command:
            return None
        found = check_shell(command, self.cwd, self.depth + 1, self.also)
        return found.at(line) if found is not None else None

    def _writes_device(self, node: ast.Call, name: str | None) -> str | None:
        if name in ("open", "io.open"):
            path_node = self._argument(node, 0, "file")
            mode_node = self._argument(node, 1, "mode")
            mode = self._value(mode_node) if mode_node is not None else "r"
            writing = isinstance(mode, str) and any(letter in mode for letter in "wa+x")
        else:
            assert isinstance(node.func, ast.Attribute)
            path_node = node.func.value
            mode_node = self._argument(node, 0, "mode")
            mode = self._value(mode_node) if mode_node is not None else "r"
            writing = node.func.attr != "open" or (isinstance(mode, str) and any(letter in mode for letter in "wa+x"))
        path = self._value(path_node) if path_node is not None else None
        if writing and isinstance(path, str) and is_block_device(path):
            return f"writes over the disk device {path}"
        return None

    @staticmethod
    def _argument(node: ast.Call, position: int, *keywords: str) -> ast.AST | None:
        if len(node.args) > position and not any(isinstance(a, ast.Starred) for a in node.args[: position + 1]):
            return node.args[position]
        return next((keyword.value for keyword in node.keywords if keyword.arg in keywords), None)

    # -- values ---------------------------------------------------------------------------------------

    def _name(self, node: ast.AST) -> str | None:
        """The dotted name a callee stands for, imports followed (`sp.run` -> subprocess.run)."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        parts.append(self.aliases.get(node.id, node.id))
        return ".".join(reversed(parts))

    def _words(self, node: ast.AST) -> tuple[str, ...] | None:
        if isinstance(node, (ast.List, ast.Tuple)):
            values = [self._value(element) for element in node.elts]
            return tuple(value if isinstance(value, str) else _UNKNOWN for value in values)
        if isinstance(node, ast.Call):  # "rm -rf /".split(), shlex.split("rm -rf /")
            name = self._name(node.func)
            if (name == "shlex.split" and node.args) or (isinstance(node.func, ast.Attribute) and node.func.attr == "split"):
                text = self._value(node.args[0] if name == "shlex.split" else node.func.value)
                if isinstance(text, str):
                    try:
                        return tuple(shlex.split(text)) if name == "shlex.split" else tuple(text.split())
                    except ValueError:
                        return None
        value = self.values.get(node.id) if isinstance(node, ast.Name) else None
        return value if isinstance(value, tuple) else None

    def _text(self, node: ast.AST) -> str:
        value = self._value(node)
        return value if isinstance(value, str) else _UNKNOWN

    def _value(self, node: ast.AST) -> str | tuple[str, ...] | None:
        """The string `node` evaluates to when that can be read from the code, else None."""
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bytes):
                return node.value.decode(errors="replace")
            return node.value if isinstance(node.value, str) else None
        if isinstance(node, ast.JoinedStr):
            return "".join(
                part.value if isinstance(part, ast.Constant) else self._text(part.value)
                for part in node.values
            )
        if isinstance(node, ast.Name):
            return self.values.get(node.id)
        if isinstance(node, ast.BinOp):
            return self._operation(node)
        if isinstance(node, ast.Attribute):
            return {"os.sep": "/", "os.curdir": ".", "os.path.sep": "/"}.get(self._name(node) or "")
        if isinstance(node, ast.Subscript) and self._name(node.value) == "os.environ":
            return "~" if self._value(node.slice) == "HOME" else None
        if isinstance(node, ast.Call):
            return self._call_value(node)
        return None

    def _operation(self, node: ast.BinOp) -> str | None:
        left, right = self._value(node.left), self._value(node.right)
        if isinstance(node.op, ast.Add) and (isinstance(left, str) or isinstance(right, str)):
            return self._text(node.left) + self._text(node.right)
        if isinstance(node.op, ast.Div) and isinstance(left, str):
            return _join(left, self._text(node.right))
        if isinstance(node.op, ast.Mod) and isinstance(left, str):
            elements = node.right.elts if isinstance(node.right, ast.Tuple) else [node.right]
            try:
                return left % tuple(self._text(element) for element in elements)
            except (TypeError, ValueError):
                return None
        return None

    def _call_value(self, node: ast.Call) -> str | None:
        name = self._name(node.func) or ""
        texts = [self._text(argument) for argument in node.args]
        if name in ("os.path.join", "posixpath.join") and texts:
            return _join(*texts)
        if name in _SAME_PATH and texts:
            return texts[0]
        if name in _PATH_TYPES:
            return _join(*texts) if texts else "."
        if name in _HOME_CALLS:
            return "~" if name == "pathlib.Path.home" or texts[:1] == ["HOME"] else None
        if name in ("os.getcwd", "pathlib.Path.cwd"):
            return self.cwd
        return self._method_value(node, texts) if isinstance(node.func, ast.Attribute) else None

    def _method_value(self, node: ast.Call, texts: list[str]) -> str | None:
        """A string or path method called on a known value: Path(...).expanduser(), '...'.format(...), ..."""
        assert isinstance(node.func, ast.Attribute)
        receiver, method = self._value(node.func.value), node.func.attr
        if not isinstance(receiver, str):
            return None
        if method in ("expanduser", "resolve", "absolute", "as_posix"):
            return receiver
        if method == "joinpath":
            return _join(receiver, *texts)
        if method == "format":
            try:
                return receiver.format(*texts, **{k.arg: self._text(k.value) for k in node.keywords if k.arg})
            except (IndexError, KeyError, ValueError):
                return None
        if method == "join" and node.args:
            words = self._words(node.args[0])
            return receiver.join(words) if words is not None else None
        return None

def _join(first: str, *rest: str) -> str:
    return posixpath.join(first, *rest)
