"""Jan: a desktop app whose API server speaks the OpenAI API on port 1337 and asks for an API key."""

from __future__ import annotations

from pathlib import Path

from oi_local import env
from oi_local.endpoint import Endpoint
from oi_local.env import TIMEOUTS
from oi_local.errors import OiLocalError
from oi_local.providers import openai_compat
from oi_local.providers.base import (
    PROBE_TIMEOUT,
    ModelChoice,
    ProviderStatus,
    find_program,
    normalize_base_url,
)

NAME = "jan"
TITLE = "Jan"
API_KEY_ENV = env.JAN_API_KEY.name

# From the seed (language-models/local-models/janai.mdx), plus the API key newer Jan versions ask for.
GUIDANCE = """Jan's API server is not running at {url}. To run it:
  1. Install the Jan desktop application from https://jan.ai/.
  2. Click the Hub icon on the left sidebar and download a model.
  3. Start the model: Settings → Models, the options icon next to it, Start Model.
  4. Settings → Advanced (or Local API Server): turn on "Enable API Server", and note its API key.
  5. Set the key in the environment ({key_env}=...) or type it when asked.
Once the server is running, choose "Try again"."""

APP_LOCATIONS = (
    Path("/Applications/Jan.app"),
    Path("~/.local/share/Jan").expanduser(),
    Path("~/jan").expanduser(),
)


def base_url(api_base: str | None = None) -> str:
    return normalize_base_url(api_base or env.get(env.JAN_API_BASE))


def api_key_from_env() -> str | None:
    return env.get(env.JAN_API_KEY)


def installed() -> bool:
    return find_program("jan") is not None or find_program("Jan") is not None or any(p.exists() for p in APP_LOCATIONS)


def detect(*, api_base: str | None = None, api_key: str | None = None, timeout: float = PROBE_TIMEOUT) -> ProviderStatus:
    url = base_url(api_base)
    key = api_key or api_key_from_env()
    state, ids = openai_compat.probe(url, api_key=key, timeout=timeout)
    guidance = GUIDANCE.format(url=url, key_env=API_KEY_ENV)
    if state == "running":
        return ProviderStatus(True, True, f"running at {url} · {len(ids)} model(s)")
    if state == "needs_key":
        return ProviderStatus(True, True, f"running at {url} · needs an API key")
    if state == "bad_key":
        return ProviderStatus(True, True, f"running at {url} · the key in {API_KEY_ENV} is refused")
    has_app = installed()
    if state != "down":
        return ProviderStatus(False, has_app, f"something at {url} answers oddly ({state})", guidance)
    return ProviderStatus(False, has_app, "installed, server not running" if has_app else "not running", guidance)


def needs_key(*, api_base: str | None = None, api_key: str | None = None, timeout: float = TIMEOUTS.server_models) -> bool:
    state, _ = openai_compat.probe(base_url(api_base), api_key=api_key or api_key_from_env(), timeout=timeout)
    return state in ("needs_key", "bad_key")


def list_models(*, api_base: str | None = None, api_key: str | None = None, timeout: float = TIMEOUTS.server_models) -> list[ModelChoice]:
    key = api_key or api_key_from_env()
    models = openai_compat.server_models(base_url(api_base), api_key=key, provider_title=TITLE, timeout=timeout)
    return openai_compat.choices(models)


def prepare(model: str, *, api_base: str | None = None, api_key: str | None = None, **_: object) -> tuple[Endpoint, None]:
    url = base_url(api_base)
    key = api_key or api_key_from_env()
    models = openai_compat.server_models(url, api_key=key, provider_title=TITLE, timeout=TIMEOUTS.server_models)
    if model not in models.ids:
        offered = ", ".join(models.ids) or "none"
        raise OiLocalError(
            f"Jan at {url} does not offer a model called '{model}' (it offers: {offered}). "
            "Start the model in Jan or pass one of those ids with --model."
        )
    return openai_compat.endpoint_for(url, model, provider=NAME, api_key=key), None
