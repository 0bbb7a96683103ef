"""Issue 12, recovery: when the server oi_local manages dies during a chat, the user hears what happened (the
signal, the log and its last lines), the server is started again once with the same settings and the question
is answered; a server oi_local does not manage gets one clear paragraph with its address."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest
from tmux_driver import Tmux

from oi_local import OpenInterpreter, local_setup
from oi_local.endpoint import Endpoint
from oi_local.errors import OiLocalError

pytestmark = pytest.mark.server

INTERPRETER = Path(sys.executable).with_name("interpreter")
QUESTION = "Would you like to run this code? (y/n/e)"


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def plain_chat(interpreter: OpenInterpreter) -> None:
    interpreter.system_message = "You are a helpful assistant. Answer in one short sentence."
    interpreter.example_messages = []
    interpreter.llm.max_tokens = 24


def ask(interpreter: OpenInterpreter, text: str) -> str:
    """One question, one model reply (words or code); code the model wrote is declined, as the seed's
    streaming API does when the consumer stops at the confirmation."""
    reply = []
    for chunk in interpreter.chat(text, display=False, stream=True):
        if chunk.get("type") == "confirmation":
            break
        if chunk.get("role") == "assistant" and isinstance(chunk.get("content"), str):
            reply.append(chunk["content"])
    return "".join(reply)


@pytest.fixture
def managed(test_model_path, tmp_path, monkeypatch):
    monkeypatch.setenv("OI_LOCAL_HOME", str(tmp_path / "home"))
    interpreter = OpenInterpreter()
    server = local_setup(interpreter, provider="llamacpp", model=str(test_model_path), progress=False,
                         context_window=2048, max_tokens=24)
    plain_chat(interpreter)
    yield interpreter, server
    server.stop()


def test_server_killed_between_questions_is_restarted_and_the_question_answered(managed, capsys):
    interpreter, server = managed
    assert ask(interpreter, "Say hello.").strip()
    old_pid, old_log, old_base = server.pid, server.log_path, interpreter.llm.api_base
    os.kill(old_pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not gone(old_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ask(interpreter, "What is the capital of France?").strip()  # answered by the server started again
    told = capsys.readouterr().err
    assert f"pid {old_pid}" in told and "SIGKILL" in told and str(old_log) in told and "Last lines:" in told
    assert "Starting it again with the same settings" in told
    assert server.pid != old_pid and server.healthy() and not gone(server.pid)
    assert interpreter.llm.api_base == old_base  # the same port (and key) where it was free
    assert server.log_path != old_log and server.log_path.exists()


def test_server_killed_mid_reply_says_so_and_the_next_question_works(managed, capsys):
    interpreter, server = managed
    interpreter.llm.max_tokens = 120
    old_pid = server.pid
    pieces = 0
    with pytest.raises(OiLocalError) as caught:
        for chunk in interpreter.chat("Count from 1 to 100, one number per line.", display=False, stream=True):
            if chunk.get("type") == "confirmation":
                break
            if chunk.get("role") == "assistant" and chunk.get("content"):
                pieces += 1
                if pieces == 3:
                    os.kill(old_pid, signal.SIGKILL)
    message = str(caught.value)
    assert pieces >= 3
    assert "stopped in the middle of this reply" in message and "started again" in message
    assert "SIGKILL" in capsys.readouterr().err
    restarted = server.pid
    assert restarted != old_pid and server.healthy()
    interpreter.llm.max_tokens = 24
    assert ask(interpreter, "Say hello.").strip()
    assert server.pid == restarted  # no second restart was needed


def test_a_server_that_cannot_start_again_is_one_clear_error(test_model_path, tmp_path, monkeypatch):
    monkeypatch.setenv("OI_LOCAL_HOME", str(tmp_path / "home"))
    model = tmp_path / "copy.gguf"
    shutil.copyfile(test_model_path, model)
    interpreter = OpenInterpreter()
    server = local_setup(interpreter, provider="llamacpp", model=str(model), progress=False, max_tokens=24)
    try:
        plain_chat(interpreter)
        os.kill(server.pid, signal.SIGKILL)
        model.unlink()  # the model is gone too: it cannot be started again
        with pytest.raises(OiLocalError) as caught:
            ask(interpreter, "Say hello.")
    finally:
        server.stop()
    message = str(caught.value)
    assert "SIGKILL" in message and "Starting it again failed" in message and str(model) in message


def test_a_server_oi_local_does_not_manage_gets_one_paragraph_with_its_address(test_model_path, tmp_path):
    from conftest import start_raw_server

    raw = start_raw_server(test_model_path, api_key="k", model_id="raw", log_path=tmp_path / "raw.log")
    try:
        interpreter = OpenInterpreter()
        interpreter.configure_for(Endpoint(api_base=raw.base_url, model_id="raw", api_key="k", context_window=2048,
                                           max_tokens=24, provider="custom"))
        plain_chat(interpreter)
        assert ask(interpreter, "Say hello.").strip()
        os.kill(raw.process.pid, signal.SIGKILL)
        raw.process.wait(10)
        with pytest.raises(OiLocalError) as caught:
            ask(interpreter, "Say hello again.")
    finally:
        raw.stop()
    message = str(caught.value)
    assert raw.base_url in message and "could not be reached" in message
    assert "did not start that server" in message and "\n" not in message


def test_interpreter_local_recovers_in_the_terminal(test_model_path, tmp_path):
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed")
    home = tmp_path / "home"
    env = {"OI_LOCAL_HOME": str(home), "TERM": "xterm-256color", "PATH": os.environ.get("PATH", ""),
           "HOME": str(tmp_path), "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}
    command = " ".join(shlex.quote(a) for a in [str(INTERPRETER), "--local", "--provider", "llamacpp", "--model",
                                                str(test_model_path), "--max_tokens", "24"])
    pane = Tmux(command, env=env, cwd=tmp_path, width=160, height=50, linger=30, name="h12-recover")

    def turn_done(after: str) -> None:
        """Wait for the end of a turn (declining any code the model wrote)."""
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            below = pane.screen().rsplit(after, 1)[-1]
            if QUESTION in below.rsplit("\n>", 1)[-1]:
                pane.type("n", enter=True)
                time.sleep(0.5)
            elif re.search(r"^>\s*$", below, flags=re.M):
                return
            time.sleep(0.2)
        raise AssertionError(f"the turn did not end:\n{pane.screen()}")

    def server_pids() -> list[int]:
        records = json.loads((home / "state" / "servers.json").read_text())
        return [r["pid"] for r in records]

    try:
        pane.wait_re(r"^>", timeout=120)
        pane.type("Say hello.", enter=True)
        turn_done("> Say hello.")
        [old_pid] = server_pids()
        os.kill(old_pid, signal.SIGKILL)
        pane.type("Say goodbye.", enter=True)
        pane.wait_for("SIGKILL", timeout=60, after="> Say goodbye.")
        turn_done("> Say goodbye.")
        below = pane.screen().rsplit("> Say goodbye.", 1)[1]
        assert "Starting it again" in below and "Error:" not in below and "Traceback" not in below
        [new_pid] = server_pids()
        assert new_pid != old_pid and not gone(new_pid)
        pane.send("C-d")
        assert pane.exit_code(timeout=60) == 0
        deadline = time.monotonic() + 10
        while not gone(new_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert gone(new_pid)
    finally:
        pane.close()


def test_a_child_this_program_started_says_how_it_ended(tmp_path):
    """`ollama serve` started here (a ManagedChild) is not restarted, but its end is told with its log."""
    from oi_local.serving.process import ManagedChild

    child = ManagedChild([sys.executable, "-c", "print('going away', flush=True); raise SystemExit(3)"],
                         log_path=tmp_path / "child.log")
    child.process.wait(30)
    told = []
    interpreter = OpenInterpreter()
    interpreter.llm.api_base = "http://127.0.0.1:9/v1"  # nothing listens there any more
    interpreter.llm.model = "openai/gone"
    interpreter.llm.on_endpoint_failure = child.recovery_hook(notify=told.append)
    with pytest.raises(OiLocalError) as caught:
        list(interpreter.llm.run([{"role": "user", "content": "hi"}]))
    assert "could not be reached" in str(caught.value) and "did not start that server" not in str(caught.value)
    assert len(told) == 1 and "status 3" in told[0] and "going away" in told[0] and str(child.log_path) in told[0]
    child.stop()
