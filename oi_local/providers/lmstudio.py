"""LM Studio: an app whose local server speaks the OpenAI API on port 1234."""

from __future__ import annotations

from pathlib import Path

from oi_local import env
from oi_local.endpoint import Endpoint
from oi_local.env import TIMEOUTS
from oi_local.providers import openai_compat
from oi_local.providers.base import (
    PROBE_TIMEOUT,
    ModelChoice,
    ProviderStatus,
    ServerModels,
    find_program,
    http_json,
    normalize_base_url,
)

NAME = "lmstudio"
TITLE = "LM Studio"

# From the seed (language-models/local-models/lm-studio.mdx).
GUIDANCE = """LM Studio's server is not running at {url}. To run LM Studio in the background:
  1. Download https://lmstudio.ai/ then start it.
  2. Select a model then click ↓ Download.
  3. Click the ↔️ button on the left (below 💬).
  4. Select your model at the top, then click Start Server.
Once the server is running, choose "Try again"."""

APP_LOCATIONS = (
    Path("/Applications/LM Studio.app"),
    Path("~/.lmstudio/bin/lms").expanduser(),
    Path("~/.cache/lm-studio/bin/lms").expanduser(),
)


def base_url(api_base: str | None = None) -> str:
    return normalize_base_url(api_base or env.get(env.LMSTUDIO_API_BASE))


def installed() -> bool:
    return find_program("lms") is not None or any(p.exists() for p in APP_LOCATIONS)


def detect(*, api_base: str | None = None, timeout: float = PROBE_TIMEOUT) -> ProviderStatus:
    url = base_url(api_base)
    state, ids = openai_compat.probe(url, timeout=timeout)
    if state == "running":
        return ProviderStatus(True, True, f"running at {url} · {len(ids)} model(s)")
    has_app = installed()
    if state != "down":
        return ProviderStatus(False, has_app, f"something at {url} answers oddly ({state})", GUIDANCE.format(url=url))
    detail = "installed, server not running" if has_app else "not running"
    return ProviderStatus(False, has_app, detail, GUIDANCE.format(url=url))


def _native_models(url: str, timeout: float) -> tuple[dict[str, bool], dict[str, int]]:
    """Loaded state and maximum context from LM Studio's own REST API (/api/v0/models), where present."""
    root = url.removesuffix("/v1")
    try:
        status, payload = http_json("GET", f"{root}/api/v0/models", timeout=timeout)
    except OSError:
        return {}, {}
    if status != 200 or not isinstance(payload, dict):
        return {}, {}
    loaded, max_context = {}, {}
    for model in payload.get("data") or []:
        if not isinstance(model, dict) or not model.get("id"):
            continue
        loaded[model["id"]] = model.get("state") == "loaded"
        ctx = model.get("loaded_context_length") or model.get("max_context_length")
        if isinstance(ctx, int) and ctx > 0:
            max_context[model["id"]] = ctx
    return loaded, max_context


def list_models(*, api_base: str | None = None, api_key: str | None = None, timeout: float = TIMEOUTS.server_models) -> list[ModelChoice]:
    return openai_compat.choices(_models(base_url(api_base), api_key, timeout))


def _models(url: str, api_key: str | None, timeout: float) -> ServerModels:
    models = openai_compat.server_models(url, api_key=api_key, provider_title=TITLE, timeout=timeout)
    models.loaded, models.max_context = _native_models(url, timeout)
    # LM Studio lists embedding models too; they cannot chat.
    models.ids = [m for m in models.ids if "embed" not in m.lower()] or models.ids
    return models


def prepare(model: str, *, api_base: str | None = None, api_key: str | None = None, **_: object) -> tuple[Endpoint, None]:
    url = base_url(api_base)
    models = _models(url, api_key, TIMEOUTS.server_models)
    if model not in models.ids:
        from oi_local.errors import OiLocalError

        offered = ", ".join(models.ids) or "none"
        raise OiLocalError(
            f"LM Studio at {url} does not offer a model called '{model}' (it offers: {offered}). "
            "Load the model in LM Studio or pass one of those ids with --model."
        )
    endpoint = openai_compat.endpoint_for(
        url, model, provider=NAME, api_key=api_key, max_context=models.max_context.get(model),
        context_source="LM Studio's model API",
    )
    return endpoint, None
