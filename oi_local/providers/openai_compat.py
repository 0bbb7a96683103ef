"""Talking to an OpenAI-compatible server someone else runs (LM Studio, Jan, any custom URL).

`OpenAIServer` is the Provider those three share: probe GET /models, list what the server offers, hand the
agent an Endpoint. Each subclass says where its server usually is, how to start it and whether it asks for a key.
"""

from __future__ import annotations

from pathlib import Path

from oi_local import env
from oi_local.endpoint import Endpoint
from oi_local.env import TIMEOUTS
from oi_local.errors import OiLocalError
from oi_local.machine.paths import app_paths
from oi_local.providers.base import (
    PROBE_TIMEOUT,
    ModelChoice,
    Provider,
    ProviderContext,
    ProviderStatus,
    Served,
    ServerModels,
    find_program,
    normalize_base_url,
    openai_models,
)

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
    state_dir: Path | None = None,
) -> Endpoint:
    """The endpoint with the context the server says it has (max_context when the caller asked already);
    the seed's 3000 / 1000 only when nothing answers."""
    max_tokens = None
    if max_context is None:
        from oi_local.providers import server_context

        asked = server_context.ask(base_url, model_id, api_key=api_key, state_dir=state_dir or app_paths().state)
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


class OpenAIServer(Provider):
    """A provider whose server speaks the OpenAI API at a URL (its default from an environment variable)."""

    listed_as = "offered by the server"
    url_variable: env.Variable | None = None  # where the default address comes from
    key_variable: env.Variable | None = None  # where the API key may come from
    lists_models = True  # prepare() refuses a model id the server does not list
    load_verb = "Load"  # "<load_verb> the model in <title>" when it does not list the one asked for
    speaker = ""  # who answers in errors ("LM Studio at URL ..."); default: the title
    model_list_source = "the server's model list"  # where server_models' max_context comes from

    @property
    def key_env(self) -> str | None:  # type: ignore[override]
        return self.key_variable.name if self.key_variable else None

    @property
    def who(self) -> str:
        return self.speaker or self.title

    def base_url(self, ctx: ProviderContext) -> str:
        return normalize_base_url(ctx.api_base or env.get(self.url_variable))

    def key(self, ctx: ProviderContext) -> str | None:
        return ctx.api_key or (env.get(self.key_variable) if self.key_variable else None)

    programs: tuple[str, ...] = ()  # its command-line programs: any on PATH means it is installed
    app_locations: tuple[str, ...] = ()  # where its app is installed (~ allowed)

    def installed(self) -> bool:
        return any(find_program(name) is not None for name in self.programs) or any(
            Path(place).expanduser().exists() for place in self.app_locations
        )

    def detect(self, ctx: ProviderContext) -> ProviderStatus:
        url = self.base_url(ctx)
        state, ids = probe(url, api_key=self.key(ctx), timeout=ctx.probe_timeout)
        if state == "running":
            return ProviderStatus(True, True, f"running at {url} · {len(ids)} model(s)")
        if self.asks_key and state in ("needs_key", "bad_key"):
            return ProviderStatus(True, True, f"running at {url} · {self.key_problem(state)}")
        installed = self.installed()
        return ProviderStatus(False, installed, self.not_running_detail(state, url, installed), self.guidance(url))

    def key_problem(self, state: str) -> str:
        if state == "bad_key" and self.key_env:
            return f"the key in {self.key_env} is refused"
        return "needs an API key"

    def not_running_detail(self, state: str, url: str, installed: bool) -> str:
        if state != "down":
            return f"something at {url} answers oddly ({state})"
        return "installed, server not running" if installed else "not running"

    def key_refused(self, ctx: ProviderContext) -> bool:
        if not self.asks_key:
            return False
        state, _ = probe(self.base_url(ctx), api_key=self.key(ctx), timeout=TIMEOUTS.key_check)
        return state in ("needs_key", "bad_key")

    def server_models(self, url: str, api_key: str | None, timeout: float = TIMEOUTS.server_models) -> ServerModels:
        """What the server offers; a clear paragraph for each way it can fail."""
        state, ids = probe(url, api_key=api_key, timeout=timeout)
        key_hint = f" (or set {self.key_env})" if self.key_env else ""
        if state == "down":
            raise OiLocalError(self.not_running_error(url))
        if state == "needs_key":
            raise OiLocalError(f"{self.who} at {url} asks for an API key. Pass it with --api_key KEY{key_hint}.")
        if state == "bad_key":
            raise OiLocalError(
                f"{self.who} at {url} refused the API key. Pass the key it expects with --api_key KEY{key_hint}."
            )
        if state != "running":
            raise OiLocalError(
                f"{self.who} at {url} answered GET /models with HTTP {state.split(':')[1]}; "
                "check that this is an OpenAI-compatible server (its address usually ends in /v1)."
            )
        return ServerModels(ids=ids)

    def list_models(self, ctx: ProviderContext) -> list[ModelChoice]:
        return choices(self.server_models(self.base_url(ctx), self.key(ctx)))

    def prepare(self, model: str, ctx: ProviderContext) -> Served:
        url, key = self.base_url(ctx), self.key(ctx)
        models = self.server_models(url, key)
        if self.lists_models and model not in models.ids:
            offered = ", ".join(models.ids) or "none"
            raise OiLocalError(
                f"{self.who} at {url} does not offer a model called '{model}' (it offers: {offered}). "
                f"{self.load_verb} the model in {self.title} or pass one of those ids with --model."
            )
        endpoint = endpoint_for(url, model, provider=self.name, api_key=key, max_context=models.max_context.get(model),
                                context_source=self.model_list_source, state_dir=(ctx.paths or app_paths()).state)
        return Served(endpoint, None)
