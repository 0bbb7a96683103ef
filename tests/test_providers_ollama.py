"""The Ollama provider against the Ollama stand-in (real protocol), through the real `ollama` client and litellm."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest
from ollama_standin import OllamaStandin

from oi_local.errors import OiLocalError
from oi_local.providers import ollama as provider
from oi_local.serving.ports import free_port

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def standin(llama_server, monkeypatch):
    s = OllamaStandin(backend_url=llama_server.base_url, backend_key=llama_server.api_key).start()
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{s.port}")
    yield s
    s.stop()


@pytest.fixture
def no_ollama_anywhere(monkeypatch, tmp_path):
    """No `ollama` program on PATH and nothing listening where OLLAMA_HOST points."""
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{free_port()}")
    monkeypatch.setattr(provider, "program", lambda: None if not (empty / "ollama").exists() else empty / "ollama")
    return empty


def test_host_url_never_needs_a_name_lookup(monkeypatch):
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert provider.host_url() == "http://127.0.0.1:11434"
    assert provider.host_url("localhost:1234") == "http://127.0.0.1:1234"
    assert provider.host_url("http://0.0.0.0:5555") == "http://127.0.0.1:5555"
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9999")
    assert provider.host_url() == "http://127.0.0.1:9999"


def test_detect_running(standin):
    status = provider.detect()
    assert status.running and status.installed
    assert standin.url in status.detail and "0.5.7" in status.detail


def test_not_installed_shows_guidance(no_ollama_anywhere):
    status = provider.detect()
    assert not status.running and not status.installed
    assert "https://ollama.com/download" in status.guidance
    with pytest.raises(OiLocalError, match="ollama.com/download"):
        provider.prepare("smollm2:135m")


def test_installed_not_running_offers_to_start_and_stops_it(no_ollama_anywhere, llama_server, tmp_path, monkeypatch):
    fake = no_ollama_anywhere / "ollama"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} {TESTS.parent / 'standins' / 'ollama_standin.py'} \"$@\"\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("OLLAMA_STANDIN_BACKEND", llama_server.base_url)
    monkeypatch.setenv("OLLAMA_STANDIN_KEY", llama_server.api_key)
    monkeypatch.setenv("OLLAMA_STANDIN_LOCAL", "smollm2:135m")

    status = provider.detect()
    assert status.installed and not status.running
    assert "ollama serve" in status.guidance and str(fake) in status.guidance

    child = provider.start_server(log_path=tmp_path / "ollama.log")
    try:
        assert provider.detect().running
        assert [m.id for m in provider.local_models()] == ["smollm2:135m"]
    finally:
        child.stop()
    assert not child.healthy()
    assert not provider.detect().running


def test_lists_local_models_with_sizes(standin):
    standin.local["smollm2:135m"] = standin.library["smollm2:135m"]
    models = provider.local_models()
    assert [m.id for m in models] == ["smollm2:135m"]
    assert models[0].size_bytes == 94_000_000
    assert "94.0 MB" in models[0].label and "Q4_1" in models[0].label


def test_pull_streams_progress_then_model_is_local(standin, capsys):
    assert provider.local_models() == []
    provider.pull("smollm2:135m")
    assert [m.id for m in provider.local_models()] == ["smollm2:135m"]
    assert any(path == "/api/pull" for _, path, _ in standin.requests)
    assert "smollm2:135m" in capsys.readouterr().out


def test_failed_pull_shows_the_servers_error(standin):
    with pytest.raises(OiLocalError) as caught:
        provider.pull("no-such-model:1b", progress=False)
    assert "pull model manifest: file does not exist" in str(caught.value)
    assert "no-such-model:1b" in str(caught.value)


def test_prepare_pulls_and_reads_context_with_show(standin):
    endpoint, server = provider.prepare("smollm2:135m", progress=False)
    assert server is None
    assert endpoint.provider == "ollama" and endpoint.llm_model == "ollama_chat/smollm2:135m"
    assert endpoint.api_base == standin.url
    assert 0 < endpoint.max_tokens < endpoint.context_window <= 8192
    assert endpoint.extra_body == {"num_ctx": endpoint.context_window}
    assert any(path == "/api/show" for _, path, _ in standin.requests)


def test_prepare_without_pull_names_the_command(standin):
    with pytest.raises(OiLocalError, match="ollama pull smollm2:135m"):
        provider.prepare("smollm2:135m", pull_missing=False)


def test_real_client_chat_and_litellm_ollama_chat(standin):
    import litellm
    import ollama

    standin.local["smollm2:135m"] = standin.library["smollm2:135m"]
    endpoint, _ = provider.prepare("smollm2:135m", progress=False)

    parts = list(ollama.Client(host=standin.url).chat(
        model="smollm2:135m", messages=[{"role": "user", "content": "Say hello."}], stream=True
    ))
    assert parts[-1].done and "".join(p.message.content or "" for p in parts).strip()

    response = litellm.completion(
        model=endpoint.llm_model, api_base=endpoint.api_base, stream=True, max_tokens=32,
        messages=[{"role": "user", "content": "Say hello."}], **endpoint.extra_body,
    )
    text = "".join((chunk.choices[0].delta.content or "") for chunk in response)
    assert text.strip()
    chats = [body for _, path, body in standin.requests if path == "/api/chat"]
    assert chats[-1]["options"]["num_ctx"] == endpoint.context_window

    oa = litellm.completion(model="openai/smollm2:135m", api_base=f"{standin.url}/v1", api_key="x",
                            max_tokens=16, messages=[{"role": "user", "content": "Hi"}])
    assert oa.choices[0].message.content is not None


def test_recommended_models_say_whether_they_fit():
    from oi_local.machine.hardware import CPU, Hardware

    tiny = Hardware(total_ram_bytes=2 * 10**9, available_ram_bytes=1 * 10**9, free_disk_bytes=100 * 10**9,
                    disk_path=Path("/"), cpu=CPU("test", 2, 2))
    choices = provider.recommended(tiny)
    by_id = {c.id: c for c in choices}
    assert by_id["smollm2:135m"].fits
    assert not by_id["codestral:22b"].fits and by_id["codestral:22b"].reason
    fitting = [c.fits for c in choices]
    assert fitting == sorted(fitting, reverse=True)  # fitting ones first

