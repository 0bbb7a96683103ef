"""Any OpenAI-compatible server at a URL the user gives."""

from __future__ import annotations

from oi_local.endpoint import Endpoint
from oi_local.env import TIMEOUTS
from oi_local.errors import OiLocalError
from oi_local.providers import openai_compat
from oi_local.providers.base import PROBE_TIMEOUT, ModelChoice, ProviderStatus, normalize_base_url

NAME = "custom"
TITLE = "Custom OpenAI-compatible URL"

GUIDANCE = """Nothing answers at {url}. Start your OpenAI-compatible server (llama.cpp's llama-server,
vLLM, text-generation-webui, ...) and give its address including the port and /v1,
for example http://127.0.0.1:8080/v1. Then choose "Try again"."""


def validate_url(url: str) -> str:
    """The normalized URL (http(s), host, port; /v1 added when no path); raises OiLocalError."""
    if not url or not url.strip():
        raise OiLocalError("No URL given. Type the server's address, for example http://127.0.0.1:8080/v1.")
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    return normalize_base_url(text)


def detect(*, api_base: str | None = None, api_key: str | None = None, timeout: float = PROBE_TIMEOUT) -> ProviderStatus:
    if not api_base:
        return ProviderStatus(False, True, "any OpenAI-compatible server (asks for its URL)")
    url = validate_url(api_base)
    state, ids = openai_compat.probe(url, api_key=api_key, timeout=timeout)
    if state == "running":
        return ProviderStatus(True, True, f"running at {url} · {len(ids)} model(s)")
    if state in ("needs_key", "bad_key"):
        return ProviderStatus(True, True, f"running at {url} · needs an API key")
    return ProviderStatus(False, True, f"not answering at {url}", GUIDANCE.format(url=url))


def list_models(*, api_base: str | None = None, api_key: str | None = None, timeout: float = TIMEOUTS.server_models) -> list[ModelChoice]:
    if not api_base:
        raise OiLocalError("The custom provider needs the server's address: pass --api_base URL.")
    url = validate_url(api_base)
    return openai_compat.choices(openai_compat.server_models(url, api_key=api_key, provider_title="The server", timeout=timeout))


def prepare(model: str, *, api_base: str | None = None, api_key: str | None = None, **_: object) -> tuple[Endpoint, None]:
    if not api_base:
        raise OiLocalError("The custom provider needs the server's address: pass --api_base URL (e.g. http://127.0.0.1:8080/v1).")
    url = validate_url(api_base)
    # A typed id the server does not list is allowed: some servers serve whatever they were started with.
    openai_compat.server_models(url, api_key=api_key, provider_title="The server", timeout=TIMEOUTS.server_models)
    return openai_compat.endpoint_for(url, model, provider=NAME, api_key=api_key), None
