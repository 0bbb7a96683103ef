"""LM Studio (1234), Jan (1337, with a key) and a custom URL, each stood in by the real llama.cpp server."""

from __future__ import annotations

import pytest
from conftest import start_raw_server
from local_support import StaticJSONServer, start_on_fixed_port

from oi_local.errors import OiLocalError
from oi_local.providers import custom, jan, lmstudio, openai_compat
from oi_local.serving.ports import free_port

JAN_KEY = "jan-secret-key"


@pytest.fixture(scope="module")
def lmstudio_server(test_model_path):
    server = start_on_fixed_port(start_raw_server, test_model_path, 1234, "LM Studio", model_id="lmstudio-community/smollm2-135m")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def jan_server(test_model_path):
    server = start_on_fixed_port(start_raw_server, test_model_path, 1337, "Jan", api_key=JAN_KEY, model_id="smollm2-135m-instruct")
    yield server
    server.stop()


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("LMSTUDIO_API_BASE", "JAN_API_BASE", "JAN_API_KEY"):
        monkeypatch.delenv(name, raising=False)


# --- LM Studio --------------------------------------------------------------------------------------------


def test_lmstudio_running_lists_and_prepares(lmstudio_server, clean_env):
    status = lmstudio.detect()
    assert status.running and "http://127.0.0.1:1234/v1" in status.detail and "1 model" in status.detail
    assert [m.id for m in lmstudio.list_models()] == ["lmstudio-community/smollm2-135m"]
    endpoint, server = lmstudio.prepare("lmstudio-community/smollm2-135m")
    assert server is None
    assert endpoint.api_base == "http://127.0.0.1:1234/v1" and endpoint.provider == "lmstudio"
    assert endpoint.llm_model == "openai/lmstudio-community/smollm2-135m" and endpoint.api_key == "fake_key"
    # the stand-in (a real llama-cpp-python server, --n_ctx 2048) is asked for its context (issue 10): not the
    # seed's fallback of 3000 / 1000
    assert (endpoint.context_window, endpoint.max_tokens) == (2048, 682) and "llama-cpp-python" in endpoint.context_source


def test_lmstudio_chat_through_litellm(lmstudio_server, clean_env):
    import litellm

    endpoint, _ = lmstudio.prepare("lmstudio-community/smollm2-135m")
    reply = litellm.completion(model=endpoint.llm_model, api_base=endpoint.api_base, api_key=endpoint.api_key,
                               max_tokens=16, messages=[{"role": "user", "content": "Say hi."}])
    assert reply.choices[0].message.content.strip()


def test_lmstudio_unknown_model_lists_what_it_offers(lmstudio_server, clean_env):
    with pytest.raises(OiLocalError, match="lmstudio-community/smollm2-135m"):
        lmstudio.prepare("no-such-model")


def test_lmstudio_not_running_shows_the_seed_steps(clean_env):
    url = f"http://127.0.0.1:{free_port()}/v1"
    status = lmstudio.detect(api_base=url)
    assert not status.running
    assert "Start Server" in status.guidance and "https://lmstudio.ai/" in status.guidance and url in status.guidance
    with pytest.raises(OiLocalError, match="Nothing answers"):
        lmstudio.prepare("x", api_base=url)


def test_lmstudio_native_api_gives_loaded_state_and_context(clean_env):
    models = {"data": [{"id": "qwen-7b", "object": "model"}, {"id": "llama-3b", "object": "model"},
                       {"id": "text-embedding-nomic", "object": "model"}]}
    native = {"data": [
        {"id": "qwen-7b", "type": "llm", "state": "not-loaded", "max_context_length": 32768},
        {"id": "llama-3b", "type": "llm", "state": "loaded", "max_context_length": 131072, "loaded_context_length": 8192},
        {"id": "text-embedding-nomic", "type": "embeddings", "state": "not-loaded", "max_context_length": 2048},
    ]}
    server = StaticJSONServer({"/v1/models": models, "/api/v0/models": native})
    try:
        url = f"http://127.0.0.1:{server.port}/v1"
        choices = lmstudio.list_models(api_base=url)
        assert [c.id for c in choices] == ["llama-3b", "qwen-7b"]  # loaded first, no embedding model
        assert "loaded" in choices[0].label and "context up to 8192" in choices[0].label
        assert "not loaded" in choices[1].label
        endpoint, _ = lmstudio.prepare("qwen-7b", api_base=url)
        assert endpoint.context_window == 32768 and endpoint.max_tokens < endpoint.context_window
    finally:
        server.stop()


# --- Jan ------------------------------------------------------------------------------------------------


def test_jan_needs_a_key(jan_server, clean_env):
    status = jan.detect()
    assert status.running and "needs an API key" in status.detail
    with pytest.raises(OiLocalError, match="--api_key"):
        jan.prepare("smollm2-135m-instruct")


def test_jan_with_key_from_flag_or_env(jan_server, clean_env, monkeypatch):
    endpoint, _ = jan.prepare("smollm2-135m-instruct", api_key=JAN_KEY)
    assert endpoint.api_key == JAN_KEY and endpoint.api_base == "http://127.0.0.1:1337/v1"
    monkeypatch.setenv("JAN_API_KEY", JAN_KEY)
    assert jan.detect().detail.endswith("1 model(s)")
    assert [m.id for m in jan.list_models()] == ["smollm2-135m-instruct"]
    endpoint, _ = jan.prepare("smollm2-135m-instruct")
    assert endpoint.api_key == JAN_KEY


def test_jan_wrong_key_is_refused_clearly(jan_server, clean_env):
    with pytest.raises(OiLocalError, match="refused the API key"):
        jan.prepare("smollm2-135m-instruct", api_key="wrong")


def test_jan_not_running_shows_the_seed_steps(clean_env, monkeypatch):
    monkeypatch.setenv("JAN_API_BASE", f"http://127.0.0.1:{free_port()}/v1")
    status = jan.detect()
    assert not status.running
    for step in ("https://jan.ai/", "Hub", "Start Model", "Enable API Server", "JAN_API_KEY"):
        assert step in status.guidance


# --- custom URL -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given, expected",
    [
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1"),
        ("127.0.0.1:8080", "http://127.0.0.1:8080/v1"),
        ("http://localhost:5000", "http://127.0.0.1:5000/v1"),
        ("https://localhost:8443/api/v1/", "https://127.0.0.1:8443/api/v1"),
    ],
)
def test_custom_url_normalized_without_name_lookup(given, expected):
    assert custom.validate_url(given) == expected


@pytest.mark.parametrize("bad", ["", "   ", "ftp://127.0.0.1:21/v1", "http://", "http://127.0.0.1:99999/v1"])
def test_custom_url_invalid_is_a_clear_error(bad):
    with pytest.raises(OiLocalError) as caught:
        custom.validate_url(bad)
    assert "http" in str(caught.value)


def test_custom_url_against_a_real_server(llama_server):
    status = custom.detect(api_base=llama_server.base_url, api_key=llama_server.api_key)
    assert status.running
    assert [m.id for m in custom.list_models(api_base=llama_server.base_url, api_key=llama_server.api_key)] == ["smollm2-135m"]
    endpoint, _ = custom.prepare("typed-anything", api_base=llama_server.base_url, api_key=llama_server.api_key)
    assert endpoint.model_id == "typed-anything" and endpoint.provider == "custom"


def test_custom_url_not_answering_shows_guidance():
    url = f"http://127.0.0.1:{free_port()}/v1"
    status = custom.detect(api_base=url)
    assert not status.running and url in status.guidance and "/v1" in status.guidance
    with pytest.raises(OiLocalError, match="Nothing answers"):
        custom.prepare("m", api_base=url)
    with pytest.raises(OiLocalError, match="--api_base"):
        custom.prepare("m")


def test_max_tokens_always_below_context():
    for ctx in (2, 100, 512, 3000, 8192, 131072):
        assert 0 < openai_compat.max_tokens_for(ctx) < ctx
