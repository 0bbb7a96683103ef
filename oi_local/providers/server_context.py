"""Asking a running server how much context its model really has (and how long an answer may be).

Each kind of server says it its own way, and only where it says it is the number used:
- a server oi_local started (its record in the state folder): the n_ctx it was started with, which the fit
  chose from the model's GGUF header and this machine's memory;
- llama.cpp's llama-server and llamafile: GET /props -> default_generation_settings.n_ctx (and n_predict);
- vLLM and others that list it: GET /v1/models -> max_model_len / context_length per model;
- LM Studio: GET /api/v0/models -> loaded_context_length (or max_context_length);
- Ollama: POST /api/show -> the model's num_ctx parameter (its OpenAI route uses that, else Ollama's default);
- llama-cpp-python's server (0.3.x lists no context anywhere: /v1/models has only id, object, owned_by "me",
  permissions): a prompt longer than any context is refused before any work with "Requested tokens (N)
  exceed context window of C", so C is read from that refusal.
`ask` returns None when nothing answers; the caller then uses its fallback and says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from oi_local.endpoint import server_root
from oi_local.env import TIMEOUTS
from oi_local.providers.base import http_json

# Ollama's own default context when a model sets no num_ctx (its OpenAI-compatible route cannot change it).
OLLAMA_DEFAULT_CONTEXT = 2048
# Longer than any context a llama-cpp-python server on one machine is started with: refused unread.
PROBE_TOKENS = 1 << 18
_REFUSAL = re.compile(r"(?:context window of|maximum context length is) (\d+)")


@dataclass(frozen=True)
class ServerContext:
    context_window: int
    max_tokens: int | None  # when the server also says how long an answer may be
    source: str  # where the numbers came from, for the start line


def _number(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def _get(url: str, api_key: str | None, timeout: float, body: dict | None = None) -> object | None:
    try:
        status, payload = http_json("POST" if body is not None else "GET", url, body=body, api_key=api_key, timeout=timeout)
    except (OSError, ValueError):
        return None
    return payload if status == 200 else None


def from_state(api_base: str, state_dir) -> ServerContext | None:
    """A llama.cpp or Llamafile server this program started (still running) at this address."""
    from oi_local.serving.state import ServerState

    parts = urlsplit(api_base)
    try:
        records = ServerState(state_dir).live_records()
    except (OSError, ValueError):
        return None
    for record in records:
        if record.port == parts.port and _same_host(record.key.host, parts.hostname or ""):
            return ServerContext(record.key.n_ctx, None, f"oi_local's {record.key.runner} server (n_ctx from the GGUF fit)")
    return None


def _same_host(a: str, b: str) -> bool:
    loopback = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
    return a == b or (a in loopback and b in loopback)


def from_props(root: str, api_key: str | None, timeout: float) -> ServerContext | None:
    payload = _get(f"{root}/props", api_key, timeout)
    if not isinstance(payload, dict):
        return None
    settings = payload.get("default_generation_settings")
    settings = settings if isinstance(settings, dict) else {}
    context = _number(settings.get("n_ctx")) or _number(payload.get("n_ctx"))
    if context is None:
        return None
    params = settings.get("params") if isinstance(settings.get("params"), dict) else settings
    predict = _number(params.get("n_predict"))
    return ServerContext(context, predict if predict and predict < context else None, "the server's /props")


def _model_entries(base: str, api_key: str | None, timeout: float) -> list[dict]:
    payload = _get(f"{base}/models", api_key, timeout)
    data = payload.get("data") if isinstance(payload, dict) else None
    return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []


def from_model_list(entries: list[dict], model_id: str) -> ServerContext | None:
    for entry in entries:
        if entry.get("id") != model_id and len(entries) > 1:
            continue
        for key in ("max_model_len", "loaded_context_length", "context_length", "max_context_length", "context_window"):
            context = _number(entry.get(key))
            if context:
                return ServerContext(context, None, f"the server's model list ({key})")
    return None


def from_lmstudio(root: str, model_id: str, api_key: str | None, timeout: float) -> ServerContext | None:
    payload = _get(f"{root}/api/v0/models", api_key, timeout)
    data = payload.get("data") if isinstance(payload, dict) else None
    for entry in data if isinstance(data, list) else []:
        if isinstance(entry, dict) and entry.get("id") == model_id:
            loaded = _number(entry.get("loaded_context_length"))
            context = loaded or _number(entry.get("max_context_length"))
            if context:
                what = "loaded context" if loaded else "maximum context"
                return ServerContext(context, None, f"LM Studio's model API ({what})")
    return None


def from_ollama(root: str, model_id: str, api_key: str | None, timeout: float) -> ServerContext | None:
    payload = _get(f"{root}/api/show", api_key, timeout, body={"model": model_id})
    if not isinstance(payload, dict) or not isinstance(payload.get("model_info") or payload.get("modelinfo"), dict):
        return None
    match = re.search(r"^\s*num_ctx\s+(\d+)", str(payload.get("parameters") or ""), re.MULTILINE)
    if match:
        return ServerContext(int(match.group(1)), None, "Ollama's show (the model's num_ctx)")
    info = payload.get("model_info") or payload.get("modelinfo")
    trained = next((_number(v) for k, v in info.items() if str(k).endswith(".context_length")), None)
    context = min(trained or OLLAMA_DEFAULT_CONTEXT, OLLAMA_DEFAULT_CONTEXT)
    return ServerContext(context, None, "Ollama's default context (the model sets no num_ctx)")


def from_refusal(base: str, model_id: str, api_key: str | None, timeout: float) -> ServerContext | None:
    """llama-cpp-python: the context named in its refusal of an over-long prompt (no token is evaluated)."""
    body = {"model": model_id, "prompt": " a" * PROBE_TOKENS, "max_tokens": 1}
    try:
        status, payload = http_json("POST", f"{base}/completions", body=body, api_key=api_key, timeout=timeout)
    except (OSError, ValueError):
        return None
    if status != 400:
        return None
    match = _REFUSAL.search(str(payload))
    if not match:
        return None
    return ServerContext(int(match.group(1)), None, "the server's own limit (llama-cpp-python's refusal of a longer prompt)")


def ask(api_base: str, model_id: str, *, api_key: str | None = None, state_dir=None,
        timeout: float = TIMEOUTS.server_context) -> ServerContext | None:
    """What the server at `api_base` says about `model_id`'s context; None when it says nothing."""
    base = api_base.rstrip("/")
    root = server_root(base)
    if state_dir is not None:
        found = from_state(base, state_dir)
        if found:
            return found
    found = from_props(root, api_key, timeout)
    if found:
        return found
    entries = _model_entries(base, api_key, timeout)
    found = from_model_list(entries, model_id)
    if found:
        return found
    if any(entry.get("owned_by") == "me" for entry in entries):  # how llama-cpp-python's server lists a model
        return from_refusal(base, model_id, api_key, TIMEOUTS.context_probe)
    return from_lmstudio(root, model_id, api_key, timeout) or from_ollama(root, model_id, api_key, timeout)
