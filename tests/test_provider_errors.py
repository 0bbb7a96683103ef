"""Every provider that talks to a server someone else runs says, in one paragraph that reads right for it,
that the server does not answer, where, and the steps that start it (issue 12: "Start The server's server
(see the steps above…)" with no steps anywhere)."""

from __future__ import annotations

import stat

import pytest
from local_support import INTERPRETER, base_env

from oi_local import providers
from oi_local.errors import OiLocalError
from oi_local.face.local_mode import prepare_endpoint
from oi_local.providers.base import ProviderContext
from oi_local.serving.ports import free_port

EXTERNAL = [p.name for p in providers.all_providers() if not p.builtin]


@pytest.fixture
def nothing_installed(monkeypatch, tmp_path):
    """No provider program on PATH, no app folders in HOME."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return empty


def not_running_error(name: str, tmp_path) -> str:
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1" if name != "ollama" else f"127.0.0.1:{port}"
    with pytest.raises(OiLocalError) as caught:
        prepare_endpoint(name, "some-model", ProviderContext(paths=None, api_base=url), progress=False)
    return str(caught.value)


@pytest.mark.parametrize("name", EXTERNAL)
def test_not_running_is_one_paragraph_with_the_steps(name, nothing_installed, app_home, tmp_path):
    provider = providers.get(name)
    message = not_running_error(name, tmp_path)
    assert "\n" not in message, message
    assert "127.0.0.1:" in message  # where it looked
    assert "see the steps above" not in message and "'s server's server" not in message
    assert "The server's" not in message and "Try again" not in message  # no menu words on the command line
    for step in provider.steps:  # the steps themselves, not a pointer to them
        assert step in message, (step, message)
    if provider.needs_url:
        assert "--api_base" in message and "/v1" in message
    else:
        assert provider.title in message


def test_ollama_installed_but_not_running_names_ollama_serve(nothing_installed, app_home, tmp_path):
    program = nothing_installed / "ollama"
    program.write_text("#!/bin/sh\nexit 1\n")
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    message = not_running_error("ollama", tmp_path)
    assert "\n" not in message
    assert f"Ollama is installed ({program})" in message and "`ollama serve`" in message


def test_custom_url_errors_read_right_on_the_command_line(tmp_path, llama_server):
    """The custom provider has no product name: its sentences speak of "the server", never "The server's server"."""
    import subprocess

    dead = f"http://127.0.0.1:{free_port()}/v1"
    runs = {
        "down": ["--api_base", dead],
        "needs key": ["--api_base", llama_server.base_url],
        "wrong key": ["--api_base", llama_server.base_url, "--api_key", "wrong"],
    }
    for what, extra in runs.items():
        done = subprocess.run([str(INTERPRETER), "--local", "--provider", "custom", "--model", "m", *extra, "-y", "hi"],
                              env=base_env(tmp_path / "home"), stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=120)
        error = done.stderr.strip()
        assert done.returncode != 0 and "Traceback" not in error, error
        assert error.startswith("Error: ") and "\n" not in error, error
        assert "server's server" not in error and "see the steps above" not in error, error
        if what == "down":
            assert error.startswith(f"Error: Nothing answers at {dead}. Start your OpenAI-compatible server there")
        elif what == "needs key":
            assert f"The server at {llama_server.base_url} asks for an API key. Pass it with --api_key KEY." in error
        else:
            assert f"The server at {llama_server.base_url} refused the API key." in error
