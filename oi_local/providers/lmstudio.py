"""LM Studio: an app whose local server speaks the OpenAI API on port 1234."""

from __future__ import annotations

from oi_local import env
from oi_local.env import TIMEOUTS
from oi_local.providers.base import ServerModels, http_json, keyword_api
from oi_local.providers.openai_compat import OpenAIServer


class LMStudio(OpenAIServer):
    name = "lmstudio"
    title = "LM Studio"
    server_title = "LM Studio's server"
    model_list_source = "LM Studio's model API"
    url_variable = env.LMSTUDIO_API_BASE
    programs = ("lms",)
    app_locations = ("/Applications/LM Studio.app", "~/.lmstudio/bin/lms", "~/.cache/lm-studio/bin/lms")
    # From the seed (language-models/local-models/lm-studio.mdx).
    steps = (
        "Download https://lmstudio.ai/ then start it.",
        "Select a model then click ↓ Download.",
        "Click the ↔️ button on the left (below 💬).",
        "Select your model at the top, then click Start Server.",
    )

    def server_models(self, url: str, api_key: str | None, timeout: float = TIMEOUTS.server_models) -> ServerModels:
        models = super().server_models(url, api_key, timeout)
        models.loaded, models.max_context = _native_models(url, timeout)
        # LM Studio lists embedding models too; they cannot chat.
        models.ids = [m for m in models.ids if "embed" not in m.lower()] or models.ids
        return models


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


PROVIDER = LMStudio()
detect, list_models, prepare = keyword_api(PROVIDER)
