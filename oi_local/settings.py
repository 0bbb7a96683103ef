"""Every setting, declared once: canonical name, kind, default, flags, profile aliases, help, where it applies,
and which values are allowed.

Everything else is derived from SETTINGS: the flags of `interpreter` and of the `oi-local` subcommands that
repeat a setting (face/cli.py), the keys a profile may hold and how they are checked (face/profiles.py), and
the attributes OpenInterpreter and Llm start with (agent/core.py, agent/llm.py). Names follow Open
Interpreter's documentation: a dotted name is an attribute of the agent's part (`llm.context_window` is
`interpreter.llm.context_window`), a bare name one of the agent itself.

Like llama-cpp-python's server settings (fields declared once, the argument parser built from them), but a
plain table: pydantic would cost more to import than `interpreter --help` takes to run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from oi_local.errors import OiLocalError

# Where a setting applies. agent/llm/computer: an attribute of the interpreter, interpreter.llm or
# interpreter.computer; terminal: read by the chat command (also kept on the interpreter for chat() from
# Python); local: local mode's command line only; server: `oi-local serve`'s command line only.
SCOPES = ("agent", "llm", "computer", "terminal", "local", "server")
CLI_ONLY_SCOPES = ("local", "server")  # nothing but the command line sets them, so the CLI fills in defaults

# Which parsers carry a setting's flags: the chat (`interpreter`, also `oi-local` without a subcommand) and
# `oi-local serve`.
CHAT = "chat"
SERVE = "serve"

# The rows are NamedTuples, not dataclasses: importing dataclasses (and inspect with it) would add a fifth
# to `interpreter --help`, which reads this table.


class Kind(NamedTuple):
    """What sort of value a setting holds."""

    expected: str  # how an error describes it: "a whole number"
    read: Callable[[Any], Any]  # a profile's (or Python's) value -> the setting's value; ValueError if wrong
    parse: Callable[[str], Any] | None  # a flag's text -> the value; None: an on/off switch


class PromptText(NamedTuple):
    """A default that is one of the agent's prompt texts (oi_local.agent.templates), looked up when first
    needed: `interpreter --help` does not import them."""

    name: str

    def value(self) -> str:
        from oi_local.agent import templates

        return getattr(templates, self.name)


def _read_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError


def _read_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError


def _read_float(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise ValueError


def _parse_float(text: str) -> float:
    return _read_float(float(text))


def _read_text(value: Any) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError


def _read_text_or_false(value: Any) -> str | bool:
    if value is False or isinstance(value, str):
        return value
    raise ValueError


def _read_text_list(value: Any) -> list[str]:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise ValueError


BOOL = Kind("true or false", _read_bool, None)
INT = Kind("a whole number", _read_int, int)
FLOAT = Kind("a number", _read_float, _parse_float)
TEXT = Kind("text", _read_text, str)
TEXT_OR_FALSE = Kind("text, or false", _read_text_or_false, None)
TEXT_LIST = Kind("a list of text", _read_text_list, None)


class Setting(NamedTuple):
    name: str  # canonical, dotted: "llm.context_window"
    kind: Kind
    default: Any  # read it with settings.default(name): a PromptText stands for its text
    help: str
    scope: str
    flags: tuple[str, ...] = ()  # command-line spellings, the long one last: ("-c", "--context_window")
    off_flag: str | None = None  # a switch's spelling that turns it off: "--no-llm_supports_functions"
    aliases: tuple[str, ...] = ()  # other spellings a profile may use (Open Interpreter's documentation)
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    below: str | None = None  # the setting this one must stay under (max_tokens under the context window)
    commands: tuple[str, ...] = (CHAT,)  # the parsers with its flags (when it has any)
    in_profile: bool = True
    group: str = "options"  # its heading in `interpreter --help`
    metavar: str | None = None

    @property
    def attribute(self) -> str:
        """The attribute's name on its owner (interpreter, interpreter.llm, ...)."""
        return self.name.rsplit(".", 1)[-1]

    @property
    def dest(self) -> str:
        """The flag's name without dashes (`context_window`): how a command reads it."""
        return self.flags[-1].lstrip("-") if self.flags else self.attribute

    @property
    def flag_text(self) -> str:
        return "/".join(self.flags)

    def allowed(self) -> str:
        """What values are allowed, for an error message: "a whole number, at least 1"."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        low, high = (_number_text(self.minimum), _number_text(self.maximum))
        if low is not None and high is not None:
            return f"{self.kind.expected} from {low} to {high}"
        if low is not None:
            return f"{self.kind.expected}, at least {low}"
        if high is not None:
            return f"{self.kind.expected}, at most {high}"
        return self.kind.expected

    def check(self, value: Any) -> Any:
        """The value converted to this setting's kind; ValueError when it is not allowed. None means unset."""
        if value is None:
            return None
        value = self.kind.read(value)
        if self.choices and value not in self.choices:
            raise ValueError
        if self.minimum is not None and value < self.minimum:
            raise ValueError
        if self.maximum is not None and value > self.maximum:
            raise ValueError
        return value

    def parse(self, text: str) -> Any:
        """A flag's text as this setting's value; ValueError when it is not allowed."""
        if self.kind.parse is None:
            raise ValueError
        return self.check(self.kind.parse(text))


def _number_text(number: float | None) -> str | None:
    if number is None:
        return None
    return str(int(number)) if float(number).is_integer() else str(number)


_LLM_SPELLINGS = ("model", "temperature", "context_window", "max_tokens", "api_base", "api_key", "api_version")


def _llm_aliases(attribute: str) -> tuple[str, ...]:
    """Open Interpreter's other spellings of an llm setting: `context_window`, `llm_context_window`."""
    bare = (attribute,) if attribute in _LLM_SPELLINGS else ()
    return (*bare, f"llm_{attribute}")


def _llm(attribute: str, kind: Kind, default: Any, help: str, *flags: str, **more: Any) -> Setting:
    more.setdefault("group", "model settings")
    more.setdefault("aliases", _llm_aliases(attribute))
    return Setting(f"llm.{attribute}", kind, default, help, "llm", flags, **more)


SETTINGS: tuple[Setting, ...] = (
    # -- the language model: interpreter.llm.* -------------------------------------------------------------
    _llm("model", TEXT, "gpt-4o", "model id, path, or litellm model name", "-m", "--model"),
    # temperature 0 is defined here and nowhere else (the local defaults and the profiles use this value)
    _llm("temperature", FLOAT, 0.0, "randomness of the model's replies (0: always the likeliest)",
         "-t", "--temperature", minimum=0, maximum=2),
    _llm("context_window", INT, None, "the model's context window in tokens (local models: default the largest that fits)",
         "-c", "--context_window", minimum=1, commands=(CHAT, SERVE)),
    _llm("max_tokens", INT, None, "the most tokens one reply may have (below the context window)",
         "-x", "--max_tokens", minimum=1, below="llm.context_window"),
    _llm("api_base", TEXT, None, "the OpenAI-compatible server's address (http://HOST:PORT/v1)", "-ab", "--api_base",
         metavar="URL"),
    _llm("api_key", TEXT, None, "the server's API key", "-ak", "--api_key", metavar="KEY", commands=(CHAT, SERVE)),
    _llm("api_version", TEXT, None, "the API version to ask for", "-av", "--api_version"),
    _llm("supports_functions", BOOL, False, "the model calls functions (else code travels as markdown blocks)",
         "-lsf", "--llm_supports_functions", off_flag="--no-llm_supports_functions"),
    _llm("supports_vision", BOOL, False, "the model reads images", "-lsv", "--llm_supports_vision"),
    _llm("execution_instructions", TEXT_OR_FALSE, PromptText("DEFAULT_EXECUTION_INSTRUCTIONS"),
         "how to run code, added to the system message when the model does not call functions"),
    # -- the agent: interpreter.* ---------------------------------------------------------------------------
    Setting("max_output", INT, 2800, "characters of code output kept for the model", "agent", ("-xo", "--max_output"),
            aliases=("llm.max_output",), minimum=0, group="model settings"),
    Setting("custom_instructions", TEXT, "", "text appended to the system message", "agent",
            ("-ci", "--custom_instructions"), group="configuration"),
    Setting("system_message", TEXT, PromptText("DEFAULT_SYSTEM_MESSAGE"), "replace the system message", "agent",
            ("-s", "--system_message"), group="configuration"),
    Setting("safe_mode", TEXT, "off", "scan code before running it", "agent", ("--safe_mode",),
            choices=("off", "ask", "auto")),
    Setting("auto_run", BOOL, False, "run code without asking", "agent", ("-y", "--auto_run")),
    Setting("loop", BOOL, False, "keep going until the model says the task is done or impossible", "agent",
            ("--loop",)),
    Setting("verbose", BOOL, False, "print what is sent to the model at each step", "agent", ("-v", "--verbose")),
    Setting("max_budget", FLOAT, None, "the most USD a session may spend on a hosted model", "agent",
            ("-b", "--max_budget"), aliases=("llm_max_budget", "llm.max_budget"), minimum=0),
    Setting("offline", BOOL, False, "never open a non-loopback connection", "agent", ("--offline",)),
    Setting("loop_message", TEXT, PromptText("LOOP_MESSAGE"), "what --loop says to the model to keep it going", "agent"),
    Setting("user_message_template", TEXT, "{content}", "wraps the user's message ({content} is the message)", "agent"),
    Setting("always_apply_user_message_template", BOOL, False, "wrap every user message, not only the last",
            "agent"),
    Setting("code_output_template", TEXT, PromptText("CODE_OUTPUT_TEMPLATE"), "wraps code output ({content} is the output)",
            "agent"),
    Setting("empty_code_output_template", TEXT, PromptText("EMPTY_CODE_OUTPUT_TEMPLATE"), "sent when code printed nothing", "agent"),
    Setting("code_output_sender", TEXT, "user", "who sends code output to the model", "agent",
            choices=("user", "assistant")),
    Setting("conversation_history", BOOL, True, "save the conversation after every turn", "agent"),
    Setting("conversation_filename", TEXT, None, "the file the conversation is saved in", "agent"),
    Setting("conversation_history_path", TEXT, None, "the folder conversations are saved in", "agent"),
    # -- the computer: interpreter.computer.* (defaults: the computer's own, offline/verbose from the agent) -
    Setting("computer.forbidden_commands", TEXT_LIST, None, "commands never run", "computer"),
    Setting("computer.verbose", BOOL, None, "debug output of the computer", "computer"),
    Setting("computer.offline", BOOL, None, "no online features in the computer", "computer"),
    # -- the terminal ------------------------------------------------------------------------------------------
    Setting("multi_line", BOOL, False, "''' starts and ends a multi-line message", "terminal", ("-ml", "--multi_line")),
    Setting("plain", BOOL, False, "print without rich formatting", "terminal", ("--plain",)),
    # -- local mode and `oi-local serve`: the command line only ----------------------------------------------
    Setting("fresh_server", BOOL, False, "start a new server even if a matching one is running", "local",
            ("--fresh_server",), commands=(CHAT, SERVE), in_profile=False, group="local models"),
    Setting("server.runner", TEXT, None, "the server program (default: from the model's format)", "server",
            ("--runner",), choices=("llamacpp", "llamafile"), commands=(SERVE,), in_profile=False),
    Setting("server.host", TEXT, "127.0.0.1", "the address to listen on", "server", ("--host",),
            commands=(SERVE,), in_profile=False),
    Setting("server.port", INT, None, "the port to listen on (default: a free one)", "server", ("--port",),
            minimum=1, maximum=65535, commands=(SERVE,), in_profile=False),
    Setting("server.n_gpu_layers", INT, None, "layers on the GPU, -1 for all (default: as many as fit)", "server",
            ("-ngl", "--n_gpu_layers"), minimum=-1, commands=(SERVE,), in_profile=False),
)


class SettingError(OiLocalError):
    """A setting given a value it cannot take: one paragraph naming it, the value and what is allowed."""

    exit_code = 2  # a usage error, as argparse reports one


# Lookups scan SETTINGS (a few dozen rows) each time rather than caching: what the table says is what counts.


def get(name: str) -> Setting:
    """The setting of a canonical name; KeyError when there is none."""
    for setting in SETTINGS:
        if setting.name == name:
            return setting
    raise KeyError(name)


def default(name: str) -> Any:
    """A setting's default value (a fresh copy of a list)."""
    value = get(name).default
    if isinstance(value, PromptText):
        return value.value()
    return list(value) if isinstance(value, list) else value


def profile_setting(spelling: str) -> Setting | None:
    """The setting a profile key means (canonical name or alias), or None when there is none."""
    return next((s for s in SETTINGS if s.in_profile and spelling in (s.name, *s.aliases)), None)


def canonical(spelling: str) -> str:
    """A setting's canonical name from any spelling: canonical, profile alias or flag name ("model")."""
    found = profile_setting(spelling) or next((s for s in SETTINGS if spelling in (s.name, s.dest)), None)
    return found.name if found is not None else spelling


def profile_keys() -> list[str]:
    return sorted(s.name for s in SETTINGS if s.in_profile)


def for_command(command: str) -> list[Setting]:
    """The settings whose flags the parser of `command` (CHAT or SERVE) carries."""
    return [s for s in SETTINGS if s.flags and command in s.commands]


def owned_by(owner: str) -> list[Setting]:
    """The settings an agent object starts with: "agent" (OpenInterpreter: its own and the terminal's),
    "llm" (Llm)."""
    scopes = ("agent", "terminal") if owner == "agent" else (owner,)
    return [s for s in SETTINGS if s.scope in scopes]


def initial_values(owner: str, given: Mapping[str, Any], *, caller: str) -> dict[str, Any]:
    """The attributes an agent object starts with: each setting's declared default, or the keyword argument
    given for it. An unknown keyword is a TypeError, as Python gives for a function's unknown argument."""
    settings = owned_by(owner)
    known = {s.attribute for s in settings}
    unknown = sorted(set(given) - known)
    if unknown:
        raise TypeError(f"{caller}() got an unexpected keyword argument {unknown[0]!r} "
                        f"(settings it takes: {', '.join(sorted(known))})")
    return {s.attribute: given[s.attribute] if s.attribute in given else default(s.name) for s in settings}


def too_large(values: Mapping[str, Any]) -> list[tuple[Setting, Setting]]:
    """(setting, the one it must stay below) for every pair in `values` (canonical -> value) out of order."""
    pairs = []
    for setting in SETTINGS:
        if setting.below is None:
            continue
        value, limit = values.get(setting.name), values.get(setting.below)
        if value is not None and limit is not None and value >= limit:
            pairs.append((setting, get(setting.below)))
    return pairs


def from_flags(command: str, given: Mapping[str, Any], *, prog: str) -> dict[str, Any]:
    """The settings of a parsed command line (dest -> the text or switch argparse read) as canonical name ->
    value, each converted and checked against its declaration before anything starts. Settings the user did
    not give are left out, except those only the command line sets (local, server): they get their default.
    A bad value is a SettingError naming the flag, the value and what is allowed."""
    values: dict[str, Any] = {}
    for setting in for_command(command):
        raw = given.get(setting.dest)
        if raw is None:
            if setting.scope in CLI_ONLY_SCOPES:
                values[setting.name] = default(setting.name)
            continue
        if isinstance(raw, bool):  # a switch
            values[setting.name] = raw
            continue
        try:
            values[setting.name] = setting.parse(raw)
        except ValueError:
            raise SettingError(
                f"{setting.flag_text} was given {raw!r}, but it takes {setting.allowed()}: {setting.help}. "
                f"Give a value like that, or leave the flag out to use the default; `{prog} --help` lists the flags."
            ) from None
    for setting, limit in too_large(values):
        raise SettingError(
            f"{setting.flag_text} {values[setting.name]} must be below {limit.flag_text} {values[limit.name]}: "
            f"{setting.help}. Lower {setting.flags[0]} or raise {limit.flags[0]}."
        )
    return values


def dests(command: str) -> dict[str, str]:
    """Flag name (dest) -> canonical name, for the settings of `command`'s parser."""
    return {s.dest: s.name for s in for_command(command)}


def add_flags(parser: Any, command: str, groups: Mapping[str, Any] | None = None) -> None:
    """Add the flags of every setting `command` carries to an argparse parser (into `groups`, by heading,
    where given). Values arrive as text and are checked by from_flags, so every error reads alike."""
    for setting in for_command(command):
        target = (groups or {}).get(setting.group, parser)
        if setting.kind is BOOL:
            target.add_argument(*setting.flags, dest=setting.dest, action="store_true", default=None, help=setting.help)
            if setting.off_flag:
                target.add_argument(setting.off_flag, dest=setting.dest, action="store_false", default=None,
                                    help=f"the opposite of {setting.flags[-1]}")
            continue
        metavar = setting.metavar or ("{" + ",".join(setting.choices) + "}" if setting.choices else setting.dest.upper())
        target.add_argument(*setting.flags, dest=setting.dest, default=None, metavar=metavar, help=setting.help)
