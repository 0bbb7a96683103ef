"""Profiles: saved settings for the agent, as YAML (with a `version` key) or Python files.

A YAML profile is read into a flat dict of canonical dotted keys ("llm.model", "auto_run", ...) and
validated key by key, so a typo is reported with its file and line instead of being silently ignored.
A Python profile is executed with `interpreter` in scope (Open Interpreter's documented profile form,
`from interpreter import interpreter` included). Flags given on the command line win over the profile.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import traceback
import types
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from oi_local.errors import OiLocalError
from oi_local.machine.paths import AppPaths

PROFILE_VERSION = "0.2.5"
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped_profiles"
SHIPPED_PROFILES = ("default.yaml", "local.yaml")
DEFAULT_PROFILE = "default"
PYTHON_KEY = "_python"  # a loaded Python profile: the path of the file to execute
FILE_KEY = "_file"  # where a loaded profile came from

_SAFE_MODES = ("off", "ask", "auto")

# canonical key -> expected kind: "bool", "int", "float", "str", "str_or_false", "list", or a tuple of choices
SETTINGS: dict[str, Any] = {
    "offline": "bool",
    "auto_run": "bool",
    "verbose": "bool",
    "max_output": "int",
    "loop": "bool",
    "loop_message": "str",
    "system_message": "str",
    "custom_instructions": "str",
    "user_message_template": "str",
    "always_apply_user_message_template": "bool",
    "code_output_template": "str",
    "empty_code_output_template": "str",
    "code_output_sender": "str",
    "conversation_history": "bool",
    "conversation_filename": "str",
    "conversation_history_path": "str",
    "max_budget": "float",
    "safe_mode": _SAFE_MODES,
    "llm.model": "str",
    "llm.temperature": "float",
    "llm.context_window": "int",
    "llm.max_tokens": "int",
    "llm.api_base": "str",
    "llm.api_key": "str",
    "llm.api_version": "str",
    "llm.supports_functions": "bool",
    "llm.supports_vision": "bool",
    "llm.execution_instructions": "str_or_false",
    "computer.forbidden_commands": "list",
    "computer.verbose": "bool",
    "computer.offline": "bool",
}

# Settings of the terminal, not of the agent: read by the chat command, never set on the interpreter.
TERMINAL_SETTINGS: dict[str, Any] = {"multi_line": "bool", "plain": "bool"}

# Other spellings found in Open Interpreter's documentation -> canonical key.
ALIASES: dict[str, str] = {
    **{name: f"llm.{name}" for name in ("model", "temperature", "context_window", "max_tokens", "api_base", "api_key", "api_version")},
    **{f"llm_{name}": f"llm.{name}" for name in ("model", "temperature", "context_window", "max_tokens", "api_base", "api_key", "api_version", "supports_functions", "supports_vision")},
    "llm.max_output": "max_output",
    "llm_max_budget": "max_budget",
    "llm.max_budget": "max_budget",
}

# Keys of Open Interpreter profiles that have no meaning here and are accepted without effect.
IGNORED = frozenset({"disable_telemetry", "computer.import_computer_api", "computer.emit_images", "speak_messages"})

# Keys of Open Interpreter profiles for features this program does not have: refused with a reason.
UNSUPPORTED = {
    "os": "OS mode (controlling the mouse, keyboard and screen) is not part of oi_local",
    "vision": "vision mode is not part of oi_local; set llm.supports_vision for a multimodal model instead",
    "fast": "`fast` selected a hosted OpenAI model; oi_local runs local models",
    "local": "`local` is a command, not a setting: run `interpreter --local` (it applies the `local` profile)",
}


class ProfileError(OiLocalError):
    """A profile that cannot be used, with the file and line of the problem."""


def install_shipped(paths: AppPaths) -> list[Path]:
    """Copy the shipped profiles into the profiles folder where they are missing; never overwrite one."""
    paths.profiles.mkdir(parents=True, exist_ok=True)
    installed = []
    for name in SHIPPED_PROFILES:
        target = paths.profiles / name
        if not target.exists():
            shutil.copyfile(SHIPPED_DIR / name, target)
            installed.append(target)
    return installed


def available(paths: AppPaths) -> list[str]:
    """File names of the profiles in the profiles folder."""
    if not paths.profiles.is_dir():
        return []
    return sorted(p.name for p in paths.profiles.iterdir() if p.suffix in (".yaml", ".yml", ".py") and p.is_file())


def find_profile(name_or_path: str, paths: AppPaths) -> Path:
    """The file for a profile name (looked up in the profiles folder) or a path."""
    install_shipped(paths)
    given = Path(name_or_path).expanduser()
    bare_name = not given.is_absolute() and "/" not in name_or_path and "\\" not in name_or_path
    if bare_name:  # the profiles folder first; a path (./x.yaml) means that file
        for candidate in (name_or_path, f"{name_or_path}.yaml", f"{name_or_path}.yml", f"{name_or_path}.py"):
            path = paths.profiles / candidate
            if path.is_file():
                return path
    if given.is_file():
        return given
    names = ", ".join(available(paths)) or "none"
    raise ProfileError(
        f"There is no profile {name_or_path!r}: it is neither a file nor a profile in {paths.profiles} "
        f"(profiles there: {names}). Pass the name of one of those, or a path to a .yaml or .py profile; "
        "`interpreter --profiles` shows the folder."
    )


def load_profile(name_or_path: str, paths: AppPaths) -> dict[str, Any]:
    """Read and validate a profile. YAML: a flat dict of canonical keys. Python: {_python: path}.

    Either way the dict has `_file`, the profile's path.
    """
    path = find_profile(name_or_path, paths)
    if path.suffix == ".py":
        return {FILE_KEY: path, PYTHON_KEY: path}
    if path.suffix not in (".yaml", ".yml"):
        raise ProfileError(f"The profile {path} is neither YAML (.yaml, .yml) nor Python (.py). Rename it with the right suffix.")
    return {FILE_KEY: path, **parse_yaml(path)}


def parse_yaml(path: Path) -> dict[str, Any]:
    """Validate a YAML profile and return its settings as canonical dotted keys."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ProfileError(f"The profile {path} cannot be read ({error}). Check that it exists and is a UTF-8 text file.") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error)
        raise ProfileError(f"The profile {where} is not valid YAML: {problem}. Fix that line (`interpreter --profiles` shows the folder).") from None
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise ProfileError(f"The profile {path}, line {root.start_mark.line + 1}: the file must be a mapping of settings (`key: value` lines), not a {root.tag.rsplit(':', 1)[-1]}.")
    settings: dict[str, Any] = {}
    version = None
    for key, value, line in _entries(root, "", path):
        where = f"{path}, line {line}"
        if key == "version":
            version = str(value)
            continue
        if key in IGNORED:
            continue
        if key in UNSUPPORTED:
            raise ProfileError(f"The profile {where}: `{key}` is not supported: {UNSUPPORTED[key]}. Remove that line.")
        canonical = ALIASES.get(key, key)
        kind = SETTINGS.get(canonical, TERMINAL_SETTINGS.get(canonical))
        if kind is None:
            raise ProfileError(
                f"The profile {where}: unknown setting `{key}`. Known settings: {', '.join(sorted(SETTINGS) + sorted(TERMINAL_SETTINGS))}. "
                "Fix the spelling or remove the line."
            )
        settings[canonical] = _check(value, kind, key, where)
    if version is not None and version != PROFILE_VERSION:
        raise ProfileError(
            f"The profile {path} says `version: {version}`, but this program reads profile version {PROFILE_VERSION}. "
            f"Check the settings against the documentation and set `version: {PROFILE_VERSION}`."
        )
    return settings


def _entries(node: Any, prefix: str, path: Path) -> Iterator[tuple[str, Any, int]]:
    """(dotted key, python value, 1-based line) for every setting in a mapping node; llm/computer nest."""
    import yaml

    for key_node, value_node in node.value:
        key = f"{prefix}{key_node.value}"
        line = key_node.start_mark.line + 1
        if not prefix and key in ("llm", "computer") and isinstance(value_node, yaml.MappingNode):
            yield from _entries(value_node, f"{key}.", path)
            continue
        if not prefix and key in ("llm", "computer"):
            raise ProfileError(f"The profile {path}, line {line}: `{key}` must be a mapping of settings (indented `name: value` lines).")
        yield key, yaml.SafeLoader(" ").construct_document(value_node), line


def _check(value: Any, kind: Any, key: str, where: str) -> Any:
    if value is None:
        return None
    if isinstance(kind, tuple):
        if value in kind:
            return value
        expected = "one of " + ", ".join(kind)
    elif kind == "bool":
        if isinstance(value, bool):
            return value
        expected = "true or false"
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        expected = "a whole number"
    elif kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        expected = "a number"
    elif kind == "str_or_false":
        if value is False or isinstance(value, str):
            return value
        expected = "text, or false"
    elif kind == "list":
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        expected = "a list of text"
    else:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        expected = "text"
    raise ProfileError(f"The profile {where}: `{key}` must be {expected}, not {value!r}. Fix that line.")


def apply(interpreter: Any, profile: dict[str, Any]) -> None:
    """Set a loaded profile's settings on the interpreter (a Python profile is executed now)."""
    if PYTHON_KEY in profile:
        run_python_profile(interpreter, Path(profile[PYTHON_KEY]))
        return
    for key, value in profile.items():
        if key.startswith("_") or key in TERMINAL_SETTINGS:
            continue
        set_setting(interpreter, key, value)


def set_setting(interpreter: Any, key: str, value: Any) -> None:
    """Set one canonical dotted setting ("llm.model") on the interpreter."""
    target = interpreter
    *owners, name = key.split(".")
    for owner in owners:
        target = getattr(target, owner)
    setattr(target, name, value)


def run_python_profile(interpreter: Any, path: Path) -> None:
    """Execute a Python profile with `interpreter` in scope; `from interpreter import interpreter` works too."""
    try:
        source = path.read_text(encoding="utf-8")
        code = compile(source, str(path), "exec")
    except SyntaxError as error:
        raise ProfileError(f"The profile {path}, line {error.lineno}: Python syntax error: {error.msg}. Fix that line.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ProfileError(f"The profile {path} cannot be read ({error}).") from None
    shim = types.ModuleType("interpreter")
    shim.interpreter = interpreter
    shim.OpenInterpreter = type(interpreter)
    previous = sys.modules.get("interpreter")
    sys.modules["interpreter"] = shim
    try:
        exec(code, {"__name__": "__oi_profile__", "__file__": str(path), "interpreter": interpreter})
    except Exception as error:
        lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__) if frame.filename == str(path)]
        where = f"{path}, line {lines[-1]}" if lines else str(path)
        raise ProfileError(f"The profile {where} failed: {type(error).__name__}: {error}. Fix the profile and try again.") from None
    finally:
        if previous is None:
            sys.modules.pop("interpreter", None)
        else:
            sys.modules["interpreter"] = previous


# command-line flag -> canonical setting
FLAG_SETTINGS: dict[str, str] = {
    "model": "llm.model",
    "temperature": "llm.temperature",
    "context_window": "llm.context_window",
    "max_tokens": "llm.max_tokens",
    "max_output": "max_output",
    "api_base": "llm.api_base",
    "api_key": "llm.api_key",
    "api_version": "llm.api_version",
    "llm_supports_functions": "llm.supports_functions",
    "llm_supports_vision": "llm.supports_vision",
    "custom_instructions": "custom_instructions",
    "system_message": "system_message",
    "safe_mode": "safe_mode",
    "auto_run": "auto_run",
    "loop": "loop",
    "verbose": "verbose",
    "max_budget": "max_budget",
    "offline": "offline",
}


def apply_flags(interpreter: Any, args: argparse.Namespace, *, skip: Collection[str] = ()) -> None:
    """Set every flag the user gave (flags win over the profile). `skip`: flag names to leave alone."""
    for flag, key in FLAG_SETTINGS.items():
        if flag in skip:
            continue
        value = getattr(args, flag, None)
        if value is not None:
            set_setting(interpreter, key, value)


def terminal_settings(profile: dict[str, Any], args: argparse.Namespace) -> dict[str, bool]:
    """multi_line and plain for the chat loop: the flag when given, else the profile, else off."""
    result = {}
    for name in TERMINAL_SETTINGS:
        flag = getattr(args, name, None)
        result[name] = bool(flag) if flag else bool(profile.get(name) or False)
    return result
