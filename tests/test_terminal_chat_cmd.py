"""The chat command as a user runs it: `interpreter` with profiles, flags, one task, saved conversations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

INTERPRETER = Path(sys.executable).with_name("interpreter")

SCRIPTED = '''
def completions(messages, **kwargs):
    yield "Let me compute.\\n```python\\nprint(6 * 7)\\n```"

interpreter.llm.completions = completions
interpreter.llm.model = "scripted"
'''


def interpreter(*argv: str, home: Path, stdin: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {"OI_LOCAL_HOME": str(home), "PATH": "/usr/bin:/bin", "HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run([str(INTERPRETER), *argv], input=stdin, env=env, cwd=cwd or home, capture_output=True, text=True, timeout=120)


@pytest.fixture
def home(tmp_path):
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def test_profiles_flag_shows_the_folder_with_the_shipped_profiles(home):
    result = interpreter("--profiles", home=home)
    assert result.returncode == 0
    assert str(home / "profiles") in result.stdout and "default.yaml" in result.stdout and "local.yaml" in result.stdout
    assert (home / "profiles" / "default.yaml").read_text().startswith("# The default profile")


def test_no_server_configured_is_a_clear_error(home):
    result = interpreter("a task", home=home)
    assert result.returncode == 1
    assert "interpreter --local" in result.stderr and "--api_base" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_profile_and_bad_profile_are_clear_errors(home, tmp_path):
    result = interpreter("-p", "nope", home=home)
    assert result.returncode == 1 and "There is no profile 'nope'" in result.stderr and "Traceback" not in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("llm:\n  modle: x\n")
    result = interpreter("-p", str(bad), home=home)
    assert result.returncode == 1 and f"{bad}, line 2" in result.stderr and "modle" in result.stderr


def test_one_task_declined_ends_and_is_saved(home, tmp_path):
    profile = tmp_path / "scripted.py"
    profile.write_text(SCRIPTED)
    result = interpreter("-p", str(profile), "--plain", "what is 6*7?", home=home, stdin="n\n")
    assert result.returncode == 0, result.stderr
    assert "```python\nprint(6 * 7)\n```" in result.stdout
    assert "Would you like to run this code? (y/n/e)" in result.stdout
    assert "\x1b" not in result.stdout
    saved = list((home / "conversations").glob("*.json"))
    assert len(saved) == 1
    messages = json.loads(saved[0].read_text())
    assert messages[0]["content"] == "what is 6*7?"
    assert messages[-1] == {"role": "user", "type": "message", "content": "I have declined to run this code."}


def test_conversations_with_none_saved_says_so(home, tmp_path):
    profile = tmp_path / "scripted.py"
    profile.write_text(SCRIPTED)
    result = interpreter("-p", str(profile), "--conversations", home=home)
    assert result.returncode == 0 and "No saved conversations" in result.stdout
