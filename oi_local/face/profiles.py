"""Profiles: saved settings for the agent, as YAML (with a `version` key) or Python files.

A YAML profile is read into a flat dict of canonical dotted keys ("llm.model", "auto_run", ...) and
validated key by key against oi_local.settings (names, aliases, kinds, allowed values), so a typo is reported
with its file and line instead of being silently ignored.
A Python profile is executed with `interpreter` in scope (Open Interpreter's documented profile form,
`from interpreter import interpreter` included). Flags given on the command line win over the profile.
"""

from __future__ import annotations

import shutil
import sys
import traceback
import types
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

from oi_local import settings as declared
from oi_local.errors import OiLocalError
from oi_local.machine.paths import AppPaths

PROFILE_VERSION = "0.2.5"
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped_profiles"
SHIPPED_PROFILES = ("default.yaml", "local.yaml")
DEFAULT_PROFILE = "default"
PYTHON_KEY = "_python"  # a loaded Python profile: the path of the file to execute
FILE_KEY = "_file"  # where a loaded profile came from

# Where the settings a profile sets on the interpreter apply; terminal settings are read by the chat command.
AGENT_SCOPES = ("agent", "llm", "computer")

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
    lines: dict[str, int] = {}
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
        setting = declared.profile_setting(key)
        if setting is None:
            raise ProfileError(
                f"The profile {where}: unknown setting `{key}`. Known settings: {', '.join(declared.profile_keys())}. "
                "Fix the spelling or remove the line."
            )
        try:
            settings[setting.name] = setting.check(value)
        except ValueError:
            raise ProfileError(f"The profile {where}: `{key}` must be {setting.allowed()}, not {value!r}. Fix that line.") from None
        lines[setting.name] = line
    for setting, limit in declared.too_large(settings):
        raise ProfileError(
            f"The profile {path}, line {lines[setting.name]}: `{setting.name}` ({settings[setting.name]}) must be below "
            f"`{limit.name}` ({settings[limit.name]}, line {lines[limit.name]}): {setting.help}. Fix one of the two lines."
        )
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
        if not prefix and key in ("llm", "computer") and value_node.tag == "tag:yaml.org,2002:null":
            continue  # every line under it commented out
        if not prefix and key in ("llm", "computer"):
            raise ProfileError(f"The profile {path}, line {line}: `{key}` must be a mapping of settings (indented `name: value` lines).")
        yield key, yaml.SafeLoader(" ").construct_document(value_node), line


def apply(interpreter: Any, profile: dict[str, Any]) -> None:
    """Set a loaded profile's settings on the interpreter (a Python profile is executed now)."""
    if PYTHON_KEY in profile:
        run_python_profile(interpreter, Path(profile[PYTHON_KEY]))
        return
    for key, value in profile.items():
        if key.startswith("_") or declared.get(key).scope not in AGENT_SCOPES:
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


def apply_flags(interpreter: Any, flags: Mapping[str, Any], *, skip: Collection[str] = ()) -> None:
    """Set every setting given on the command line (`flags`: canonical name -> value, such as an Invocation;
    flags win over the profile). `skip`: settings to leave alone, by any spelling ("model", "llm.model")."""
    skipped = {declared.canonical(name) for name in skip}
    for key, value in flags.items():
        if value is None or key in skipped or declared.get(key).scope not in AGENT_SCOPES:
            continue
        set_setting(interpreter, key, value)


def terminal_settings(profile: dict[str, Any], flags: Mapping[str, Any]) -> dict[str, bool]:
    """multi_line and plain for the chat loop: the flag when given, else the profile, else off."""
    result = {}
    for setting in declared.SETTINGS:
        if setting.scope == "terminal":
            flag = flags.get(setting.name)
            result[setting.attribute] = bool(flag) if flag else bool(profile.get(setting.name) or False)
    return result
