"""Talking to an OpenAI-compatible server someone else runs (LM Studio, Jan, any custom URL)."""

from __future__ import annotations

from oi_local.endpoint import Endpoint
from oi_local.env import TIMEOUTS
from oi_local.errors import OiLocalError
from oi_local.providers.base import PROBE_TIMEOUT, ModelChoice, ServerModels, openai_models

# The seed's local-mode defaults, used when a server does not say how much context its model has.
DEFAULT_CONTEXT = 3000
DEFAULT_MAX_TOKENS = 1000


def max_tokens_for(context_window: int) -> int:
    """A third of the context for the answer (the seed's 3000 → 1000), at least 128, always below it."""
    return max(min(context_window // 3, 4096), min(128, context_window - 1))


def probe(base_url: str, *, api_key: str | None = None, timeout: float = PROBE_TIMEOUT) -> tuple[str, list[str]]:
    """("running" | "needs_key" | "bad_key" | "error:<status>" | "down", model ids)."""
    try:
        status, ids = openai_models(base_url, api_key=api_key, timeout=timeout)
    except OSError:
        return "down", []
    if status == 200:
        return "running", ids
    if status in (401, 403):
        return ("bad_key" if api_key else "needs_key"), []
    return f"error:{status}", []


def server_models(base_url: str, *, api_key: str | None, provider_title: str, timeout: float = TIMEOUTS.server_models) -> ServerModels:
    state, ids = probe(base_url, api_key=api_key, timeout=timeout)
    if state == "down":
        raise OiLocalError(
            f"Nothing answers at {base_url}. Start {provider_title}'s server (see the steps above, or run "
            "`interpreter --local` and pick it for guidance), then try again."
        )
    if state == "needs_key":
        raise OiLocalError(
            f"{provider_title} at {base_url} asks for an API key. Pass it with --api_key KEY "
            "(or set it in the environment variable named in the guidance)."
        )
    if state == "bad_key":
        raise OiLocalError(
            f"{provider_title} at {base_url} refused the API key (401). Copy the key from "
            f"{provider_title}'s server settings and pass it with --api_key KEY."
        )
    if state != "running":
        raise OiLocalError(
            f"{provider_title} at {base_url} answered GET /models with HTTP {state.split(':')[1]}; "
            "check that this is an OpenAI-compatible server (its address usually ends in /v1)."
        )
    return ServerModels(ids=ids)


def choices(models: ServerModels) -> list[ModelChoice]:
    out = []
    for model_id in models.ids:
        notes = []
        if model_id in models.loaded:
            notes.append("loaded" if models.loaded[model_id] else "not loaded")
        if model_id in models.max_context:
            notes.append(f"context up to {models.max_context[model_id]}")
        label = model_id + (f"  ({', '.join(notes)})" if notes else "")
        out.append(ModelChoice(id=model_id, label=label, context_length=models.max_context.get(model_id)))
    # Loaded models first: answering needs no load time.
    out.sort(key=lambda c: not models.loaded.get(c.id, False))
    return out


def endpoint_for(
    base_url: str,
    model_id: str,
    *,
    provider: str,
    api_key: str | None,
    max_context: int | None = None,
    context_source: str = "the server's model list",
) -> Endpoint:
    """The endpoint with the context the server says it has (max_context when the caller asked already);
    the seed's 3000 / 1000 only when nothing answers."""
    max_tokens = None
    if max_context is None:
        from oi_local.machine.paths import app_paths
        from oi_local.providers import server_context

        asked = server_context.ask(base_url, model_id, api_key=api_key, state_dir=app_paths().state)
        if asked is not None:
            max_context, max_tokens, context_source = asked.context_window, asked.max_tokens, asked.source
        else:
            context_source = "fallback: the server did not say"
    context = max_context or DEFAULT_CONTEXT
    return Endpoint(
        api_base=base_url,
        model_id=model_id,
        # litellm's openai provider insists on a key; local servers ignore it (seed: "fake_key").
        api_key=api_key or "fake_key",
        context_window=context,
        max_tokens=min(max_tokens, max_tokens_for(context)) if max_tokens else max_tokens_for(context),
        provider=provider,
        context_source=context_source,
    )
