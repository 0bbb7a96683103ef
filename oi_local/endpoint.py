"""Endpoint: the value handed from whatever serves a model to the agent that talks to it."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


def is_loopback(host: str | None) -> bool:
    """True for a name or address of this machine's loopback interface: localhost, 127.0.0.0/8, ::1.

    Not "0.0.0.0": a server listening there is reachable from other machines."""
    name = (host or "").strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_local_url(url: str | None) -> bool:
    """True when a client connecting to this URL reaches this machine: a loopback host, or "0.0.0.0" / "::"
    (which a connect() sends to this machine)."""
    host = (urlsplit(url).hostname or "") if url else ""
    return is_loopback(host) or host in ("0.0.0.0", "::")


def llm_model_name(provider: str, model_id: str) -> str:
    """The model name as litellm wants it: Ollama's own API for Ollama, OpenAI-compatible for the rest."""
    return f"ollama_chat/{model_id}" if provider == "ollama" else f"openai/{model_id}"


def speaks_openai_here(model: str | None, api_base: str | None) -> bool:
    """An "openai/<id>" model served on this machine: asked over plain HTTP (agent.llm.openai_stream), not
    through litellm."""
    return bool(api_base) and str(model or "").startswith("openai/") and is_local_url(api_base)


def needs_litellm(provider: str, api_base: str | None = None) -> bool:
    """Whether the agent will talk to this provider's endpoint through litellm; `api_base` None: the
    provider's own server on this machine."""
    return not speaks_openai_here(llm_model_name(provider, "model"), api_base or "http://127.0.0.1")


@dataclass(frozen=True)
class Endpoint:
    api_base: str  # e.g. "http://127.0.0.1:43121/v1" (OpenAI-compatible) or "http://127.0.0.1:11434" (ollama)
    model_id: str  # the id the server knows the model by
    api_key: str | None
    context_window: int
    max_tokens: int
    provider: str  # "llamacpp" | "llamafile" | "ollama" | "lmstudio" | "jan" | "custom"
    pid: int | None = None  # the server process when this program started it
    log_path: Path | None = None
    extra_body: dict = field(default_factory=dict)  # provider-specific request options (ollama: num_ctx)
    context_source: str = ""  # where context_window and max_tokens came from (shown on the start line)

    @property
    def llm_model(self) -> str:
        """The model name as litellm wants it."""
        return llm_model_name(self.provider, self.model_id)


def server_root(api_base: str) -> str:
    """http://host:port/v1 -> http://host:port (where llama.cpp servers keep /props and their tokenize routes)."""
    parts = urlsplit(api_base.rstrip("/"))
    path = parts.path[: -len("/v1")] if parts.path.endswith("/v1") else parts.path
    return f"{parts.scheme}://{parts.netloc}{path}"
