"""Settings declared once (oi_local.settings): the flags, the profile keys and the agent's defaults are all
read from the one table, so none of them can disagree with it (or with each other)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from oi_local import settings
from oi_local.agent import messages as lmc
from oi_local.agent.core import OpenInterpreter
from oi_local.agent.llm import Llm
from oi_local.endpoint import Endpoint
from oi_local.face import profiles
from oi_local.face.cli import _chat_parser, _subcommand_parser, parse
from oi_local.face.invocation import Invocation
from oi_local.machine.paths import app_paths

ROOT = Path(__file__).resolve().parent.parent

# The flags of the parsers before the settings were declared once: none may go missing.
CHAT_FLAGS_BEFORE = (
    "--version", "-l", "--local", "--local_models", "--provider", "--fresh_server", "-m", "--model", "-t",
    "--temperature", "-c", "--context_window", "-x", "--max_tokens", "-xo", "--max_output", "-ab", "--api_base",
    "-ak", "--api_key", "-av", "--api_version", "-lsf", "--llm_supports_functions", "--no-llm_supports_functions",
    "-lsv", "--llm_supports_vision", "--profiles", "-p", "--profile", "-ci", "--custom_instructions", "-s",
    "--system_message", "--conversations", "--safe_mode", "-y", "--auto_run", "--loop", "-v", "--verbose", "-b",
    "--max_budget", "-ml", "--multi_line", "--offline", "--plain",
)
SERVE_FLAGS_BEFORE = ("--runner", "--host", "--port", "-c", "--context_window", "-ngl", "--n_gpu_layers", "--api_key",
                      "--fresh_server")
# The profile keys (canonical and aliases) accepted before: none may go missing either.
PROFILE_KEYS_BEFORE = (
    "offline", "auto_run", "verbose", "max_output", "loop", "loop_message", "system_message", "custom_instructions",
    "user_message_template", "always_apply_user_message_template", "code_output_template",
    "empty_code_output_template", "code_output_sender", "conversation_history", "conversation_filename",
    "conversation_history_path", "max_budget", "safe_mode", "llm.model", "llm.temperature", "llm.context_window",
    "llm.max_tokens", "llm.api_base", "llm.api_key", "llm.api_version", "llm.supports_functions",
    "llm.supports_vision", "llm.execution_instructions", "computer.forbidden_commands", "computer.verbose",
    "computer.offline", "multi_line", "plain", "model", "temperature", "context_window", "max_tokens", "api_base",
    "api_key", "api_version", "llm_model", "llm_temperature", "llm_context_window", "llm_max_tokens", "llm_api_base",
    "llm_api_key", "llm_api_version", "llm_supports_functions", "llm_supports_vision", "llm.max_output",
    "llm_max_budget", "llm.max_budget",
)


def sample(setting: settings.Setting) -> object:
    """A value the setting allows that is not its default."""
    if setting.choices:
        return next(c for c in reversed(setting.choices) if c != setting.default)
    if setting.kind is settings.BOOL:
        return not setting.default
    if setting.kind is settings.INT:
        return int(setting.minimum if setting.minimum is not None and setting.minimum > 0 else 0) + 7
    if setting.kind is settings.FLOAT:
        return 0.5
    if setting.kind is settings.TEXT_OR_FALSE:
        return False
    if setting.kind is settings.TEXT_LIST:
        return ["echo never"]
    return "a sample value"


def owner_of(interpreter: OpenInterpreter, setting: settings.Setting) -> object:
    target = interpreter
    for part in setting.name.split(".")[:-1]:
        target = getattr(target, part)
    return target


def agent_settings(*scopes: str) -> list[settings.Setting]:
    return [s for s in settings.SETTINGS if s.scope in scopes]


def test_names_are_unique_and_every_row_is_well_formed():
    names = [s.name for s in settings.SETTINGS]
    assert len(names) == len(set(names))
    spellings = [spelling for s in settings.SETTINGS for spelling in (s.name, *s.aliases)]
    assert len(spellings) == len(set(spellings)), "a profile spelling that means two settings"
    flags = [(command, f) for s in settings.SETTINGS for command in s.commands for f in (*s.flags, s.off_flag) if f]
    assert len(flags) == len(set(flags)), "a flag that means two settings"
    for s in settings.SETTINGS:
        assert s.scope in settings.SCOPES and s.help
        assert s.below is None or settings.get(s.below)
        assert s.check(settings.default(s.name)) == settings.default(s.name), s.name
        if s.scope in ("agent", "terminal"):
            assert "." not in s.name
        elif s.scope in ("llm", "computer"):
            assert s.name.startswith(f"{s.scope}.")


def test_every_flag_the_parsers_had_is_still_there():
    chat = _chat_parser()._option_string_actions
    assert [f for f in CHAT_FLAGS_BEFORE if f not in chat] == []
    serve = _subcommand_parser()._subparsers._group_actions[0].choices["serve"]._option_string_actions
    assert [f for f in SERVE_FLAGS_BEFORE if f not in serve] == []


def test_every_profile_key_accepted_before_is_still_accepted():
    assert [key for key in PROFILE_KEYS_BEFORE if settings.profile_setting(key) is None] == []


@pytest.mark.parametrize("setting", settings.for_command(settings.CHAT), ids=lambda s: s.name)
def test_every_chat_flag_sets_its_setting(setting):
    value = sample(setting)
    for flag in setting.flags:
        given = parse([flag] if setting.kind is settings.BOOL else [flag, str(value)])
        assert isinstance(given, Invocation) and given[setting.name] == (True if setting.kind is settings.BOOL else value)
        assert getattr(given, setting.dest) == given[setting.name]
    if setting.off_flag:
        assert parse([setting.off_flag])[setting.name] is False


@pytest.mark.parametrize("setting", agent_settings("agent", "llm", "computer"), ids=lambda s: s.name)
def test_flag_profile_and_keyword_reach_the_same_attribute(setting, app_home, tmp_path):
    """One setting, every way in: the declared default is what the agent starts with, and a profile line, a
    flag and the keyword argument all set the attribute the declaration names."""
    agent = OpenInterpreter()
    owner = owner_of(agent, setting)
    if setting.default is not None or setting.scope != "computer":  # the computer keeps its own defaults
        assert getattr(owner, setting.attribute) == settings.default(setting.name)
    value = sample(setting)

    if setting.in_profile:
        path = tmp_path / f"{setting.attribute}.yaml"
        path.write_text(yaml.safe_dump({setting.name: value}))
        from_profile = OpenInterpreter()
        profiles.apply(from_profile, profiles.load_profile(str(path), app_paths()))
        assert getattr(owner_of(from_profile, setting), setting.attribute) == value
        for alias in setting.aliases:
            path.write_text(yaml.safe_dump({alias: value}))
            assert profiles.load_profile(str(path), app_paths())[setting.name] == value

    if setting.flags:
        from_flag = OpenInterpreter()
        argv = [setting.flags[-1]] if value is True else [setting.off_flag] if value is False else [setting.flags[-1], str(value)]
        profiles.apply_flags(from_flag, parse(argv))
        assert getattr(owner_of(from_flag, setting), setting.attribute) == value

    if setting.scope == "agent":
        assert getattr(OpenInterpreter(**{setting.attribute: value}), setting.attribute) == value
    elif setting.scope == "llm":
        assert getattr(Llm(**{setting.attribute: value}), setting.attribute) == value


@pytest.mark.parametrize("setting", agent_settings("terminal"), ids=lambda s: s.name)
def test_terminal_settings_start_at_their_default_and_come_from_flag_or_profile(setting):
    assert getattr(OpenInterpreter(), setting.attribute) == settings.default(setting.name)
    assert getattr(OpenInterpreter(**{setting.attribute: True}), setting.attribute) is True
    assert profiles.terminal_settings({}, parse([setting.flags[-1]]))[setting.attribute] is True
    assert profiles.terminal_settings({setting.name: True}, parse([]))[setting.attribute] is True


def test_unknown_keyword_is_a_type_error_as_in_python():
    with pytest.raises(TypeError, match="temprature"):
        OpenInterpreter(temprature=0.3)
    with pytest.raises(TypeError, match="modle"):
        Llm(modle="x")


def test_a_row_added_to_the_table_is_a_flag_a_profile_key_and_an_agent_attribute(monkeypatch, tmp_path, app_home):
    """Nothing but the table has to change for a new setting: the parser, profiles and the agent follow."""
    row = settings.Setting("probe_setting", settings.INT, 5, "a setting only this test knows", "agent",
                           ("-zz", "--probe_setting"), minimum=1)
    monkeypatch.setattr(settings, "SETTINGS", (*settings.SETTINGS, row))
    assert OpenInterpreter().probe_setting == 5 and OpenInterpreter(probe_setting=8).probe_setting == 8
    assert parse(["-zz", "9"])["probe_setting"] == 9
    with pytest.raises(settings.SettingError, match="--probe_setting"):
        parse(["-zz", "0"])
    path = tmp_path / "p.yaml"
    path.write_text("probe_setting: 3\n")
    agent = OpenInterpreter()
    profiles.apply(agent, profiles.load_profile(str(path), app_paths()))
    assert agent.probe_setting == 3


def test_a_changed_default_is_what_the_agent_and_the_local_defaults_use(monkeypatch):
    """Temperature 0 is written once: change the row and the agent, the local defaults and a fresh Llm follow."""
    table = tuple(s._replace(default=0.25) if s.name == "llm.temperature" else s for s in settings.SETTINGS)
    monkeypatch.setattr(settings, "SETTINGS", table)
    agent = OpenInterpreter()
    assert agent.llm.temperature == 0.25 and Llm().temperature == 0.25
    agent.llm.temperature = 0.9
    agent.configure_for(Endpoint("http://127.0.0.1:9/v1", "m", None, 2048, 256, "llamacpp"))
    assert agent.llm.temperature == 0.25


def test_the_message_templates_defaults_agree_with_the_declaration():
    templates = lmc.Templates()
    for field in dataclasses.fields(templates):
        setting = settings.profile_setting(field.name) or settings.profile_setting(f"llm.{field.name}")
        assert setting is not None, field.name
        assert getattr(templates, field.name) == settings.default(setting.name), field.name


def test_no_literal_temperature_outside_the_declaration():
    """`temperature ... 0` appears nowhere in the code but oi_local/settings.py."""
    pattern = re.compile(r"temperature\W{1,6}0(\.0)?\b")
    hits = [
        str(path.relative_to(ROOT)) for path in (ROOT / "oi_local").rglob("*")
        if path.suffix in (".py", ".yaml") and path.name != "settings.py"
        for line in path.read_text().splitlines() if pattern.search(line) and not line.lstrip().startswith("#")
    ]
    assert hits == []


def test_an_invocation_cannot_be_changed():
    given = parse(["-c", "2048", "hi"])
    with pytest.raises(AttributeError, match="cannot be changed"):
        given.context_window = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        given.settings["llm.context_window"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        given.options["message"] = "other"  # type: ignore[index]
    assert given["llm.context_window"] == 2048 and given.message == "hi" and given.max_tokens is None


def test_argparse_stays_in_the_cli():
    """No argparse Namespace travels past the command line: only face/cli.py imports argparse."""
    importers = sorted(
        str(path.relative_to(ROOT)) for path in (ROOT / "oi_local").rglob("*.py")
        if re.search(r"^\s*(import argparse|from argparse import)", path.read_text(), re.MULTILINE)
    )
    assert importers == ["oi_local/face/cli.py"]
    namespace_users = sorted(
        str(path.relative_to(ROOT)) for path in (ROOT / "oi_local").rglob("*.py")
        if "Namespace(" in path.read_text() or "argparse.Namespace" in path.read_text()
    )
    assert namespace_users == []


def test_cli_only_settings_get_their_defaults_at_the_cli():
    given = parse(["serve", "some-model"], prog="oi-local")
    assert given.command == "serve" and given.model == "some-model"
    assert given.host == "127.0.0.1" and given.fresh_server is False and given.port is None
    assert given.context_window is None and "llm.context_window" not in given
