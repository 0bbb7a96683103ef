"""Asking servers for their context window: the real llama-cpp-python server (its refusal of an over-long
prompt), oi_local's own server records, and stand-ins speaking the real protocols of servers no machine here
runs (llama.cpp's llama-server and llamafile: /props; vLLM: max_model_len; LM Studio: /api/v0/models;
Ollama: /api/show). The fallback is used only when nothing answers, and the start line says the source."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ollama_standin import OllamaStandin

from oi_local.face.local_mode import summary_line
from oi_local.providers import openai_compat, server_context
from oi_local.serving.state import ServerKey, ServerRecord, ServerState, process_create_time


class InfoStandin:
    """An HTTP server answering GET/POST routes with fixed JSON (everything else: 404), as the servers above
    do; `requests` records what was asked."""

    def __init__(self, routes: dict[tuple[str, str], object]) -> None:
        self.routes = routes
        self.requests: list[tuple[str, str]] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                standin.requests.append((method, self.path))
                payload = standin.routes.get((method, self.path))
                body = json.dumps(payload if payload is not None else {"error": "not found"}).encode()
                self.send_response(200 if payload is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):  # noqa: N802
                self._answer("GET")

            def do_POST(self):  # noqa: N802
                self._answer("POST")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def standin():
    made = []

    def make(routes):
        made.append(InfoStandin(routes))
        return made[-1]

    yield make
    for server in made:
        server.stop()


MODELS = {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "someone"}]}


def test_llama_cpp_python_says_its_context_by_refusing_a_longer_prompt(llama_server):
    asked = server_context.ask(llama_server.base_url, llama_server.model_id, api_key=llama_server.api_key)
    assert asked is not None and asked.context_window == 2048  # the fixture's --n_ctx
    assert "llama-cpp-python" in asked.source


def test_llama_server_and_llamafile_props(standin):
    new = {("GET", "/props"): {"default_generation_settings": {"n_ctx": 65536, "params": {"n_predict": 4096}},
                               "total_slots": 4}, ("GET", "/v1/models"): MODELS}
    asked = server_context.ask(standin(new).base_url, "m")
    assert (asked.context_window, asked.max_tokens, asked.source) == (65536, 4096, "the server's /props")
    old = {("GET", "/props"): {"default_generation_settings": {"n_ctx": 8192, "n_predict": -1}}}
    asked = server_context.ask(standin(old).base_url, "m")
    assert (asked.context_window, asked.max_tokens) == (8192, None)


def test_vllm_model_list_and_lm_studio_api(standin):
    vllm = {("GET", "/v1/models"): {"data": [{"id": "m", "object": "model", "owned_by": "vllm", "max_model_len": 32768}]}}
    assert server_context.ask(standin(vllm).base_url, "m").context_window == 32768
    lmstudio = {("GET", "/v1/models"): MODELS, ("GET", "/api/v0/models"): {"data": [
        {"id": "other", "max_context_length": 4096},
        {"id": "m", "state": "loaded", "max_context_length": 131072, "loaded_context_length": 16384}]}}
    asked = server_context.ask(standin(lmstudio).base_url, "m")
    assert asked.context_window == 16384 and "LM Studio" in asked.source


def test_ollama_show_through_its_openai_route(llama_server):
    ollama = OllamaStandin(backend_url=llama_server.base_url, backend_key=llama_server.api_key,
                           local_models=("smollm2:135m",)).start()
    try:
        asked = server_context.ask(ollama.url + "/v1", "smollm2:135m")
    finally:
        ollama.stop()
    # the model sets no num_ctx, so Ollama's OpenAI route uses its default, below the trained 8192
    assert asked.context_window == server_context.OLLAMA_DEFAULT_CONTEXT and "Ollama" in asked.source


def test_a_server_this_program_started_is_read_from_its_record(tmp_path, test_model_path):
    pid, created = os.getpid(), process_create_time(os.getpid())
    key = ServerKey.for_file("llamacpp", test_model_path, model_id="m", n_ctx=6144, n_gpu_layers=0, host="127.0.0.1")
    ServerState(tmp_path).add(ServerRecord(key, pid, created, 45678, "k", pid, created, str(tmp_path / "log")))
    asked = server_context.ask("http://127.0.0.1:45678/v1", "m", state_dir=tmp_path, timeout=0.2)
    assert asked.context_window == 6144 and "GGUF" in asked.source


def test_the_fallback_only_when_nothing_answers_and_the_start_line_says_so(standin, tmp_path, monkeypatch):
    monkeypatch.setenv("OI_LOCAL_HOME", str(tmp_path))
    silent = standin({("GET", "/v1/models"): MODELS})
    endpoint = openai_compat.endpoint_for(silent.base_url, "m", provider="custom", api_key=None)
    assert (endpoint.context_window, endpoint.max_tokens) == (3000, 1000)
    assert "fallback" in endpoint.context_source and "fallback" in summary_line(endpoint)
    assert ("GET", "/props") in silent.requests and ("POST", "/api/show") in silent.requests
    talking = standin({("GET", "/v1/models"): MODELS, ("GET", "/props"): {"default_generation_settings": {"n_ctx": 8192}}})
    endpoint = openai_compat.endpoint_for(talking.base_url, "m", provider="custom", api_key=None)
    assert (endpoint.context_window, endpoint.max_tokens) == (8192, openai_compat.max_tokens_for(8192))
    assert summary_line(endpoint).endswith(f"· context 8192 · max tokens {endpoint.max_tokens} (the server's /props)")


def test_local_setup_against_a_custom_url_uses_the_servers_context(llama_server, app_home):
    from oi_local import OpenInterpreter, local_setup

    interpreter = OpenInterpreter()
    local_setup(interpreter, provider="custom", model="smollm2-135m", api_base=llama_server.base_url,
                api_key=llama_server.api_key)
    assert interpreter.llm.context_window == 2048  # what the server runs with, not the fallback 3000
    assert interpreter.llm.max_tokens == openai_compat.max_tokens_for(2048)
