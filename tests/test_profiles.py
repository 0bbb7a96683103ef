"""Profiles: shipped copies, YAML validation with file and line, Python profiles, flags over profiles."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from oi_local.face import profiles
from oi_local.face.cli import parse
from oi_local.machine.paths import app_paths


class Settings(SimpleNamespace):
    """A plain attribute holder shaped like the agent's settings (interpreter.llm / interpreter.computer)."""


def blank_interpreter() -> Settings:
    return Settings(llm=Settings(model="gpt-4o", temperature=0.0), computer=Settings(), auto_run=False, offline=False)


@pytest.fixture
def paths(app_home):
    return app_paths()


def write(paths, name: str, text: str) -> Path:
    paths.profiles.mkdir(parents=True, exist_ok=True)
    path = paths.profiles / name
    path.write_text(text)
    return path


def test_shipped_profiles_are_copied_once_and_never_overwritten(paths):
    installed = profiles.install_shipped(paths)
    assert {p.name for p in installed} == {"default.yaml", "local.yaml"}
    (paths.profiles / "default.yaml").write_text("auto_run: true\nversion: 0.2.5\n")
    assert profiles.install_shipped(paths) == []
    assert profiles.load_profile("default", paths)["auto_run"] is True


def test_shipped_profiles_validate(paths):
    for name in profiles.SHIPPED_PROFILES:
        settings = profiles.parse_yaml(profiles.SHIPPED_DIR / name)
        assert settings["offline"] is True


def test_nested_dotted_and_alias_spellings_all_mean_the_same(paths):
    write(paths, "a.yaml", "llm:\n  model: openai/x\n  temperature: 0.5\nversion: 0.2.5\n")
    write(paths, "b.yaml", "llm.model: openai/x\nllm.temperature: 0.5\n")
    write(paths, "c.yaml", "model: openai/x\ntemperature: 0.5\n")
    write(paths, "d.yaml", "llm_model: openai/x\nllm_temperature: 0.5\n")
    loaded = [profiles.load_profile(n, paths) for n in "abcd"]
    for profile in loaded:
        assert profile["llm.model"] == "openai/x" and profile["llm.temperature"] == 0.5


def test_unknown_key_names_file_and_line(paths):
    path = write(paths, "typo.yaml", "llm:\n  model: x\n  temprature: 0.3\nversion: 0.2.5\n")
    with pytest.raises(profiles.ProfileError) as error:
        profiles.load_profile("typo", paths)
    assert f"{path}, line 3" in str(error.value) and "temprature" in str(error.value)


def test_bad_yaml_names_file_and_line(paths):
    path = write(paths, "broken.yaml", "auto_run: true\nllm:\n  model: [unclosed\n")
    with pytest.raises(profiles.ProfileError) as error:
        profiles.load_profile("broken", paths)
    assert str(path) in str(error.value) and "line" in str(error.value) and "not valid YAML" in str(error.value)


def test_wrong_type_and_wrong_version_are_refused(paths):
    write(paths, "t.yaml", "auto_run: sometimes\n")
    with pytest.raises(profiles.ProfileError, match="line 1.*true or false"):
        profiles.load_profile("t", paths)
    write(paths, "v.yaml", "auto_run: true\nversion: 0.1.0\n")
    with pytest.raises(profiles.ProfileError, match="version"):
        profiles.load_profile("v", paths)
    write(paths, "s.yaml", "safe_mode: maybe\n")
    with pytest.raises(profiles.ProfileError, match="off, ask, auto"):
        profiles.load_profile("s", paths)


def test_unsupported_open_interpreter_modes_say_why(paths):
    write(paths, "os.yaml", "os: true\n")
    with pytest.raises(profiles.ProfileError, match="OS mode"):
        profiles.load_profile("os", paths)


def test_missing_profile_lists_the_available_ones(paths):
    with pytest.raises(profiles.ProfileError) as error:
        profiles.load_profile("nope", paths)
    assert "default.yaml" in str(error.value) and str(paths.profiles) in str(error.value)


def test_profile_by_path(paths, tmp_path):
    path = tmp_path / "mine.yml"
    path.write_text("custom_instructions: be brief\n")
    assert profiles.load_profile(str(path), paths)["custom_instructions"] == "be brief"


def test_apply_sets_nested_settings(paths):
    write(paths, "p.yaml", "llm:\n  model: openai/m\n  context_window: 4096\ncomputer:\n  forbidden_commands: [rm -rf /]\nauto_run: true\nmulti_line: true\n")
    interpreter = blank_interpreter()
    profile = profiles.load_profile("p", paths)
    profiles.apply(interpreter, profile)
    assert interpreter.llm.model == "openai/m" and interpreter.llm.context_window == 4096
    assert interpreter.computer.forbidden_commands == ["rm -rf /"] and interpreter.auto_run is True
    assert not hasattr(interpreter, "multi_line")  # a terminal setting, read by the chat command
    args = parse([])
    assert profiles.terminal_settings(profile, args) == {"multi_line": True, "plain": False}


def test_flags_win_over_the_profile(paths):
    write(paths, "p.yaml", "llm:\n  model: openai/from-profile\n  temperature: 0.7\nauto_run: false\n")
    interpreter = blank_interpreter()
    profiles.apply(interpreter, profiles.load_profile("p", paths))
    profiles.apply_flags(interpreter, parse(["-m", "openai/from-flag", "-y", "--no-llm_supports_functions", "-c", "2048"]))
    assert interpreter.llm.model == "openai/from-flag"
    assert interpreter.llm.temperature == 0.7  # not given as a flag: the profile's value stays
    assert interpreter.auto_run is True and interpreter.llm.supports_functions is False
    assert interpreter.llm.context_window == 2048


def test_apply_flags_can_skip(paths):
    interpreter = blank_interpreter()
    profiles.apply_flags(interpreter, parse(["-m", "catalog-id", "-t", "0.2"]), skip={"model"})
    assert interpreter.llm.model == "gpt-4o" and interpreter.llm.temperature == 0.2


def test_python_profile_runs_with_interpreter_in_scope(paths):
    write(paths, "py.py", "from interpreter import interpreter as same\nassert same is interpreter\ninterpreter.llm.model = 'openai/py'\ninterpreter.auto_run = True\n")
    interpreter = blank_interpreter()
    profiles.apply(interpreter, profiles.load_profile("py", paths))
    assert interpreter.llm.model == "openai/py" and interpreter.auto_run is True
    import sys

    assert "interpreter" not in sys.modules


def test_python_profile_errors_name_the_line(paths):
    write(paths, "bad.py", "x = 1\ninterpreter.nothing.here = 2\n")
    with pytest.raises(profiles.ProfileError, match=r"bad.py, line 2"):
        profiles.apply(blank_interpreter(), profiles.load_profile("bad", paths))
    write(paths, "syntax.py", "def (:\n")
    with pytest.raises(profiles.ProfileError, match=r"syntax.py, line 1.*syntax"):
        profiles.apply(blank_interpreter(), profiles.load_profile("syntax", paths))


def test_real_agent_takes_a_profile(paths):
    """The real OpenInterpreter accepts every setting the shipped profiles and the flags set."""
    core = pytest.importorskip("oi_local.agent.core")
    from oi_local.face.commands import chat_cmd

    args = parse(["-m", "openai/x", "-ab", "http://127.0.0.1:9/v1", "-y", "-ci", "be brief", "--safe_mode", "off"])
    interpreter, profile = chat_cmd.build_interpreter(args, paths)
    assert isinstance(interpreter, core.OpenInterpreter)
    assert interpreter.llm.model == "openai/x" and interpreter.auto_run is True and interpreter.offline is True
    assert interpreter.custom_instructions == "be brief"
    assert profile[profiles.FILE_KEY] == paths.profiles / "default.yaml"



def test_a_bare_name_means_the_profiles_folder_before_the_current_folder(paths, tmp_path, monkeypatch):
    write(paths, "mine.yaml", "custom_instructions: from the folder\n")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text("custom_instructions: from the current folder\n")
    assert profiles.load_profile("mine.yaml", paths)["custom_instructions"] == "from the folder"
    assert profiles.load_profile("./mine.yaml", paths)["custom_instructions"] == "from the current folder"
    (tmp_path / "only_here.yaml").write_text("custom_instructions: only here\n")
    assert profiles.load_profile("only_here.yaml", paths)["custom_instructions"] == "only here"
