"""The real `interpreter` program in a real terminal (tmux): keys typed with send-keys, the screen read
with capture-pane. Control-flow tests drive the agent with a Python profile that replaces
llm.completions (the documented hook for custom models); one test talks to the real llama.cpp server."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tmux_driver import Tmux

pytestmark = [pytest.mark.tmux, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]

INTERPRETER = Path(sys.executable).with_name("interpreter")
QUESTION = "Would you like to run this code? (y/n/e)"

SCRIPTED_PROFILE = '''
# A scripted model: code for the tasks the tests type, then a short answer once output comes back.
import time

def completions(messages, **kwargs):
    last = messages[-1]["content"] if isinstance(messages[-1]["content"], str) else ""
    if "TASK-MULTIPLY" in last:
        reply = "I will compute it.\\n```python\\nx = 6\\nprint(x * 7)\\n```"
    elif "TASK-SLEEP" in last:
        reply = "```python\\nprint('sleeping now', flush=True)\\nimport time\\ntime.sleep(60)\\nprint('woke up')\\n```"
    elif "TASK-SLOWTALK" in last:
        for n in range(600):
            yield f"word{n} "
            time.sleep(0.1)
        return
    else:
        reply = "Done, the task is finished."
    for start in range(0, len(reply), 4):
        yield reply[start:start + 4]
        time.sleep(0.005)

interpreter.llm.completions = completions
interpreter.llm.model = "scripted"
interpreter.offline = True
interpreter.auto_run = False
'''


@pytest.fixture
def terminal_env(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return {
        "OI_LOCAL_HOME": str(home),
        "TERM": "xterm-256color",
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HF_HUB_OFFLINE": "1",
    }


@pytest.fixture
def scripted_profile(tmp_path):
    profile = tmp_path / "scripted.py"
    profile.write_text(SCRIPTED_PROFILE)
    return profile


@pytest.fixture
def scripted(scripted_profile, tmp_path, terminal_env):
    profile = scripted_profile
    panes = []

    def start(*flags: str) -> Tmux:
        command = " ".join([shlex.quote(str(INTERPRETER)), "--profile", shlex.quote(str(profile)), *flags])
        pane = Tmux(command, env=terminal_env, cwd=tmp_path, width=120, height=45, linger=30)
        panes.append(pane)
        pane.wait_re(r"^>", timeout=60)
        return pane

    yield start
    for pane in panes:
        pane.close()


def test_task_shows_code_panel_then_runs_on_yes(scripted):
    pane = scripted()
    pane.type("TASK-MULTIPLY please", enter=True)
    screen = pane.wait_re(re.escape(QUESTION))
    assert "x = 6" in screen and "print(x * 7)" in screen and "╭─ python" in screen  # the code panel
    assert "42" not in screen  # nothing ran before the answer
    pane.type("y", enter=True)
    screen = pane.wait_re(r"Done, the task is finished\.")
    assert re.search(r"╭─ output.*\n│ 42 ", screen), screen
    pane.wait_re(r"^>\s*$", timeout=10, after=screen.index("Done, the task"))


def test_no_declines_and_the_program_keeps_going(scripted):
    pane = scripted()
    pane.type("TASK-MULTIPLY please", enter=True)
    pane.wait_re(re.escape(QUESTION))
    pane.type("n", enter=True)
    screen = pane.wait_re(r"^>\s*$", timeout=10, after=pane.screen().index(QUESTION))
    assert "42" not in screen


def test_ctrl_c_during_a_long_cell_returns_to_the_prompt_and_a_second_quits(scripted):
    pane = scripted()
    pane.type("TASK-SLEEP please", enter=True)
    pane.wait_re(re.escape(QUESTION))
    pane.type("y", enter=True)
    screen = pane.wait_re(r"sleeping now", timeout=60)
    mark = len(screen)
    pane.send("C-c")
    screen = pane.wait_re(r"Stopped \(Ctrl-C\)", timeout=20)
    assert not re.search(r"│ woke up", screen)  # the cell did not finish (its code says print('woke up'))
    # back at the prompt, and Python still runs code
    pane.type("TASK-MULTIPLY please", enter=True)
    pane.wait_re(re.escape(QUESTION) + r"\s*$", timeout=30, after=mark)
    pane.type("y", enter=True)
    pane.wait_re(r"│ 42 ", timeout=60, after=mark)
    pane.type("%tokens", enter=True)
    pane.wait_re(r"Tokens sent with the next request", timeout=20, after=mark)
    pane.send("C-c")
    pane.wait_re(r"EXITED-0", timeout=20)


def test_ctrl_c_while_the_model_writes_returns_to_the_prompt(scripted):
    pane = scripted()
    pane.type("TASK-SLOWTALK please", enter=True)
    screen = pane.wait_re(r"word3 ", timeout=30)
    pane.send("C-c")
    screen = pane.wait_re(r"Stopped \(Ctrl-C\)", timeout=20)
    pane.wait_re(r"^>\s*$", timeout=10, after=screen.index("Stopped"))
    assert "word599" not in pane.screen()
    pane.type("%undo", enter=True)
    pane.wait_re(r"Removed \d+ message\(s\), starting with your message: 'TASK-SLOWTALK please'", timeout=10)


def test_magic_commands_in_the_terminal(scripted, tmp_path):
    pane = scripted()
    pane.type("%% echo hi-from-$((40+2))", enter=True)
    pane.wait_re(r"hi-from-42", timeout=60)
    saved = tmp_path / "saved.json"
    pane.type("TASK-MULTIPLY please", enter=True)
    pane.wait_re(re.escape(QUESTION))
    pane.type("y", enter=True)
    pane.wait_re(r"Done, the task is finished\.")
    pane.type(f"%save_message {saved}", enter=True)
    pane.wait_re(r"Saved \d+ message", timeout=10)
    assert '"print(x * 7)' in saved.read_text() or "print(x * 7)" in saved.read_text()
    pane.type("%help", enter=True)
    pane.wait_re(r"%jupyter", timeout=10)


def test_multi_line_message(scripted):
    pane = scripted("--multi_line")
    pane.type("'''", enter=True)
    pane.type("first line", enter=True)
    pane.type("TASK-MULTIPLY on the second line", enter=True)
    pane.wait_re(r"^TASK-MULTIPLY on the second line", timeout=10)
    time.sleep(1)
    screen = pane.screen()
    assert QUESTION not in screen and "Done, the task" not in screen  # still reading: nothing was sent yet
    pane.type("'''", enter=True)
    pane.wait_re(re.escape(QUESTION), timeout=30)
    pane.type("n", enter=True)


def test_plain_mode_prints_no_escape_codes(tmp_path, terminal_env):
    profile = tmp_path / "scripted.py"
    profile.write_text(SCRIPTED_PROFILE)
    result = subprocess.run(
        [str(INTERPRETER), "--profile", str(profile), "--plain", "-y", "TASK-MULTIPLY please"],
        env=terminal_env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "```python\nx = 6\nprint(x * 7)\n```" in result.stdout
    assert "42" in result.stdout and "Done, the task is finished." in result.stdout
    assert "\x1b" not in result.stdout


def test_real_model_answers_in_the_terminal(llama_server, tmp_path, terminal_env):
    """The real llama.cpp server with the test model: a task typed, the reply streamed; when the model
    writes code (the test model usually does), y runs it and its output panel is shown; a further block
    is declined with n, which ends the turn at the prompt."""
    command = " ".join(shlex.quote(a) for a in [
        str(INTERPRETER), "--api_base", llama_server.base_url, "--api_key", llama_server.api_key,
        "--model", f"openai/{llama_server.model_id}", "--max_tokens", "80", "--context_window", "2048",
    ])
    pane = Tmux(command, env=terminal_env, cwd=tmp_path, width=120, height=45, linger=30)

    def counts() -> tuple[int, int, int]:
        screen = pane.screen()
        ran = screen.count("╭─ output") + screen.count("(no output)")
        return (screen.count(QUESTION), len(re.findall(r"^>\s*$", screen, flags=re.M)), ran)

    def wait_for_question_or_prompt(questions: int) -> bool:
        """True when a new confirmation question is waiting, False when the turn ended at the prompt."""
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            asked, prompts, _ = counts()
            if asked > questions:
                return True
            if prompts > 0:
                return False
            time.sleep(0.2)
        raise AssertionError(f"no question and no prompt in 180 s:\n{pane.screen()}")

    try:
        pane.wait_re(r"^>", timeout=60)
        pane.type("Print the word hello with python.", enter=True)
        pane.wait_re(r"^> Print the word hello", timeout=10)
        if wait_for_question_or_prompt(0):
            assert "╭─ python" in pane.screen() or "╭─ " in pane.screen()  # the code panel
            pane.type("y", enter=True)
            if wait_for_question_or_prompt(1):
                pane.type("n", enter=True)
                pane.wait_re(r"^>\s*$", timeout=30)
            assert counts()[2] >= 1, pane.screen()  # the code ran: its output panel (or no-output note) is shown
        screen = pane.screen()
        assert "Error: " not in screen and "EXITED" not in screen, screen  # no failure of the program itself
    finally:
        pane.close()


def test_conversations_picks_a_saved_one_and_resumes_it(scripted_profile, tmp_path, terminal_env):
    from oi_local.agent import conversations

    folder = Path(terminal_env["OI_LOCAL_HOME"]) / "conversations"
    older = [{"role": "user", "type": "message", "content": "older talk about cats"},
             {"role": "assistant", "type": "message", "content": "Cats are fine."}]
    newer = [{"role": "user", "type": "message", "content": "newer talk about dogs"},
             {"role": "assistant", "type": "message", "content": "Dogs are fine."},
             {"role": "user", "type": "message", "content": "and birds?"},
             {"role": "assistant", "type": "message", "content": "Birds too."}]
    conversations.save(older, folder / "older.json")
    os.utime(folder / "older.json", (time.time() - 3600, time.time() - 3600))
    conversations.save(newer, folder / "newer.json")
    command = " ".join([shlex.quote(str(INTERPRETER)), "--profile", shlex.quote(str(scripted_profile)), "--conversations"])
    pane = Tmux(command, env=terminal_env, cwd=tmp_path, width=120, height=45, linger=30)
    try:
        screen = pane.wait_re(r"Resume which conversation\?", timeout=60)
        pane.wait_re(r"older talk about cats")
        assert "newer talk about dogs" in pane.screen()
        pane.send("Down")
        pane.send("Enter")
        pane.wait_re(r"Resumed older\.json \(2 messages\)")
        pane.wait_re(r"^>", timeout=20)
        pane.type("%info", enter=True)
        screen = pane.wait_re(r"messages\s+2\b")
        assert "Traceback" not in screen
    finally:
        pane.close()
