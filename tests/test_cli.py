"""The command line as a user meets it: `oi-local --help`, output into a closed pipe, and flags checked
before anything starts (issue 12)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from local_support import base_env

from oi_local import settings
from oi_local.face import profiles
from oi_local.face.cli import parse
from oi_local.machine.paths import app_paths

BIN = Path(sys.executable).parent
INTERPRETER = BIN / "interpreter"
OI_LOCAL = BIN / "oi-local"


def run(program: Path, *argv: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(program), *argv], env=base_env(home), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


# -- oi-local --help ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[str(OI_LOCAL)], [sys.executable, "-m", "oi_local"]], ids=["oi-local", "python -m"])
def test_oi_local_help_lists_its_subcommands(command, tmp_path):
    result = subprocess.run([*command, "--help"], env=base_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: oi-local")
    for name in ("hardware", "models", "serve"):
        assert re.search(rf"^\s+{name}\s+\w.+$", result.stdout, re.MULTILINE), f"no line for {name}"
    assert "--context_window" not in result.stdout and "--auto_run" not in result.stdout  # the chat's flags


def test_interpreter_help_stays_the_chat_usage(tmp_path):
    result = run(INTERPRETER, "--help", home=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: interpreter") and "--auto_run" in result.stdout
    assert not re.search(r"^\s+hardware\s+\w", result.stdout, re.MULTILINE)


# -- a closed pipe ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "program, argv",
    [
        (OI_LOCAL, ["models", "list", "--all", "--json"]),
        (OI_LOCAL, ["models", "list", "--all"]),
        (OI_LOCAL, ["hardware", "--json"]),
        (OI_LOCAL, ["--help"]),
        (INTERPRETER, ["--help"]),
        (INTERPRETER, ["--version"]),
        (INTERPRETER, ["--profiles"]),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else " ".join(v),
)
def test_a_closed_stdout_ends_quietly(program, argv, tmp_path):
    """`oi-local models list --all --json | head` with the reader gone before the first byte: no traceback,
    and the exit status a program stopped by SIGPIPE has in a shell (128 + 13)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([str(program), *argv], env=base_env(tmp_path), stdin=subprocess.DEVNULL,
                                stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr, result.stderr
    assert "Exception ignored" not in result.stderr
    assert result.returncode == 128 + signal.SIGPIPE


def test_head_in_a_real_shell_pipeline(tmp_path):
    """The user's own command line, with `head` closing the pipe after one line."""
    script = f"set -o pipefail; {OI_LOCAL} models list --all --json | head -n 1; echo status=$?"
    result = subprocess.run(["bash", "-c", script], env=base_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.stdout.startswith("{") and "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
    assert re.search(r"status=(0|141)$", result.stdout.strip())


# -- flags checked before anything starts --------------------------------------------------------------------


def bad_values(setting: settings.Setting) -> list[str]:
    """Values the declaration refuses, as a user would type them."""
    if setting.choices:
        return ["nope"]
    values = ["abc"]
    step = 1 if setting.kind is settings.INT else 0.5
    if setting.minimum is not None:
        values.append(str(setting.minimum - step if step == 0.5 else int(setting.minimum) - 1))
        values.append("-5" if setting.minimum > -5 else str(int(setting.minimum) - 5))
    if setting.maximum is not None:
        values.append(str(setting.maximum + step if step == 0.5 else int(setting.maximum) + 1))
    if setting.kind is settings.FLOAT:
        values.append("nan")
    return values


CHECKED = [
    (command, s, value)
    for command in (settings.CHAT, settings.SERVE)
    for s in settings.for_command(command)
    if s.choices or s.kind in (settings.INT, settings.FLOAT)
    for value in bad_values(s)
]


def test_the_checked_flags_cover_the_numbers_and_choices():
    names = {s.name for _, s, _ in CHECKED}
    assert {"llm.context_window", "llm.max_tokens", "llm.temperature", "max_output", "max_budget", "safe_mode",
            "server.port", "server.n_gpu_layers", "server.runner"} <= names


@pytest.mark.parametrize("command, setting, value", CHECKED, ids=lambda v: getattr(v, "name", v))
def test_every_number_and_choice_is_checked_with_one_paragraph(command, setting, value):
    argv = [setting.flags[0], value] if command == settings.CHAT else ["serve", "m", setting.flags[0], value]
    with pytest.raises(settings.SettingError) as error:
        parse(argv, prog="interpreter" if command == settings.CHAT else "oi-local")
    message = str(error.value)
    assert setting.flags[-1] in message and repr(value) in message and setting.allowed() in message
    assert "\n" not in message and error.value.exit_code == 2


def test_max_tokens_must_be_below_the_context_window():
    with pytest.raises(settings.SettingError, match=r"--max_tokens 4096 must be below .*--context_window 2048"):
        parse(["-c", "2048", "-x", "4096"])
    assert parse(["-c", "2048", "-x", "512"])["llm.max_tokens"] == 512


def test_profiles_are_checked_against_the_same_declaration(app_home, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("llm:\n  context_window: -5\n")
    with pytest.raises(profiles.ProfileError, match=r"p.yaml, line 2: `llm.context_window` must be a whole number, at least 1, not -5"):
        profiles.load_profile(str(path), app_paths())
    path.write_text("llm:\n  context_window: 2048\n  max_tokens: 4096\n")
    with pytest.raises(profiles.ProfileError, match=r"line 3: `llm.max_tokens` \(4096\) must be below `llm.context_window` \(2048, line 2\)"):
        profiles.load_profile(str(path), app_paths())
    path.write_text("llm:\n  # everything here commented out\n")
    assert profiles.load_profile(str(path), app_paths()) == {profiles.FILE_KEY: path}


def assert_refused_before_starting(result: subprocess.CompletedProcess, home: Path, flag: str, value: str) -> None:
    assert result.returncode == 2, result.stderr
    error = result.stderr.strip()
    assert error.startswith("Error: ") and "\n" not in error, error  # one paragraph, no usage block, no traceback
    assert flag in error and repr(value) in error
    # nothing started: no server log, no state, no download (the app folder was never even made)
    assert not (home / "logs").exists() and not (home / "models").exists() and not (home / "state").exists()


def test_local_mode_refuses_a_bad_context_window_before_the_download(tmp_path):
    home = tmp_path / "home"
    result = run(INTERPRETER, "--local", "--provider", "llamacpp", "--model", "smollm2-135m", "-c", "-5", "-y", "hi",
                 home=home)
    assert_refused_before_starting(result, home, "--context_window", "-5")
    assert "at least 1" in result.stderr


def test_local_mode_refuses_a_bad_context_window_before_the_server(tmp_path, test_model_path):
    home = tmp_path / "home"
    result = run(INTERPRETER, "--local", "--provider", "llamacpp", "--model", str(test_model_path), "-c", "-5", "-y",
                 "hi", home=home)
    assert_refused_before_starting(result, home, "--context_window", "-5")


@pytest.mark.parametrize("flag, value", [("-c", "-5"), ("-ngl", "-7"), ("--port", "70000"), ("--runner", "vllm")])
def test_serve_refuses_bad_flags_before_the_server(tmp_path, test_model_path, flag, value):
    home = tmp_path / "home"
    result = run(OI_LOCAL, "serve", str(test_model_path), flag, value, home=home)
    long_flag = next(s.flags[-1] for s in settings.for_command(settings.SERVE) if flag in s.flags)
    assert_refused_before_starting(result, home, long_flag, value)
    assert "oi-local serve --help" in result.stderr


def test_an_unknown_flag_is_one_paragraph_too(tmp_path):
    result = run(INTERPRETER, "--contex_window", "5", home=tmp_path / "home")
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "--contex_window" in result.stderr and "interpreter --help" in result.stderr
