"""Local mode without menus: provider + model → a serving Endpoint → an agent configured for it.

    from oi_local import interpreter, local_setup
    server = local_setup(interpreter, provider="llamacpp", model="smollm2-135m")
    interpreter.chat("What is 2 + 2?")
    server.stop()   # or leave it: it is stopped when Python exits
"""

from __future__ import annotations

import dataclasses
from typing import Any

from oi_local import env
from oi_local.endpoint import Endpoint
from oi_local.env import TIMEOUTS
from oi_local.errors import OiLocalError
from oi_local.machine.paths import AppPaths, app_paths
from oi_local.providers import DEFAULT as DEFAULT_PROVIDER
from oi_local.providers.base import ProviderContext

APPROVAL_NOTICE = (
    "Open Interpreter will require approval before running code.\n\n"
    "Use `interpreter -y` to bypass this.\n\n"
    "Press `CTRL-C` to exit."
)
AUTO_RUN_NOTICE = "Code will run without asking for approval (-y). Press `CTRL-C` to stop."


def with_limits(endpoint: Endpoint, *, context_window: int | None = None, max_tokens: int | None = None) -> Endpoint:
    """The endpoint with the user's context window / max tokens, keeping max_tokens below the context."""
    if not context_window and not max_tokens:
        return endpoint
    ctx = context_window or endpoint.context_window
    tokens = max_tokens or min(endpoint.max_tokens, max(1, ctx - 1))
    if tokens >= ctx:
        raise OiLocalError(
            f"max_tokens ({tokens}) must be less than the context window ({ctx}). "
            "Lower --max_tokens or raise --context_window."
        )
    extra = dict(endpoint.extra_body)
    if "num_ctx" in extra:
        extra["num_ctx"] = ctx
    source = ", ".join(f"{flag} from the command line" for flag, given in (("context", context_window), ("max tokens", max_tokens)) if given)
    return dataclasses.replace(endpoint, context_window=ctx, max_tokens=tokens, extra_body=extra,
                               context_source=f"{source}; {endpoint.context_source}" if endpoint.context_source else source)


def prepare_endpoint(
    provider: str, model: str, context: ProviderContext | None = None, **fields: Any
) -> tuple[Endpoint, Any]:
    """(Endpoint, the process serving it when this program started one, else None).

    `context` says everything else (paths, api_base, limits, ...); its fields may also be given as keywords."""
    from oi_local import providers

    env.apply_offline()
    chosen = providers.get(provider)
    if not model:
        raise OiLocalError(
            f"No model given for {chosen.title}. Pass one with --model (model=... from Python); "
            "`interpreter --local` lists the ones you can use."
        )
    ctx = dataclasses.replace(context or ProviderContext(), **fields)
    if ctx.offline:
        env.set_hub_offline()  # before anything can reach the hub: not even a name is looked up
    ctx = dataclasses.replace(ctx, paths=(ctx.paths or app_paths()).ensure())
    started = None
    if ctx.start_server and chosen.can_start:
        status = chosen.detect(dataclasses.replace(ctx, timeout=TIMEOUTS.provider_check))
        if not status.running and status.installed:
            started = chosen.start_server(ctx)
    try:
        endpoint, server = chosen.prepare(model, ctx)
    except BaseException:
        if started is not None:
            started.stop()
        raise
    if not chosen.builtin:
        # Models served by another program are on disk once they answer.
        env.set_hub_offline()
    return with_limits(endpoint, context_window=ctx.context_window, max_tokens=ctx.max_tokens), server or started


def attach_recovery(interpreter: Any, server: Any) -> None:
    """When a server this program started dies mid-chat, the agent hears what happened (on stderr), the
    server is started once more with the same settings and the question is sent again."""
    hook = getattr(server, "recovery_hook", None)
    if hook is not None:
        interpreter.llm.on_endpoint_failure = hook(notify=_tell)


def _tell(text: str) -> None:
    import sys

    print(text, file=sys.stderr, flush=True)


def summary_line(endpoint: Endpoint) -> str:
    from oi_local import providers

    return (
        f"Model {endpoint.model_id} via {providers.title(endpoint.provider)} at {endpoint.api_base} "
        f"· context {endpoint.context_window} · max tokens {endpoint.max_tokens}"
        + (f" ({endpoint.context_source})" if endpoint.context_source else "")
    )


def local_setup(
    interpreter: Any,
    provider: str = DEFAULT_PROVIDER,
    model: str | None = None,
    *,
    api_base: str | None = None,
    api_key: str | None = None,
    paths: AppPaths | None = None,
    fresh_server: bool = False,
    progress: bool = True,
    context_window: int | None = None,
    max_tokens: int | None = None,
    start_ollama: bool = False,
    offline: bool | None = None,
) -> Any:
    """Get the model served and point `interpreter` at it with the tuned local defaults.

    `offline` (default: the interpreter's own `offline` setting): use only a model already on disk; nothing,
    not even a name lookup, reaches the network.

    Returns what serves the model when this program runs it: the ManagedServer of llama.cpp / Llamafile
    (stopped when Python exits, or call .stop()), or, with start_ollama=True, the `ollama serve` child it
    started (same .stop()). None when another program serves the model (Ollama, LM Studio, Jan, a URL).
    """
    context = ProviderContext(
        paths=paths, api_base=api_base, api_key=api_key, fresh_server=fresh_server, progress=progress,
        context_window=context_window, max_tokens=max_tokens, start_server=start_ollama,
        offline=bool(getattr(interpreter, "offline", False) if offline is None else offline),
    )
    endpoint, server = prepare_endpoint(provider, model or "", context)
    interpreter.configure_for(endpoint)
    attach_recovery(interpreter, server)
    return server
