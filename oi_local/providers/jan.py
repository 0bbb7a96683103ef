"""Jan: a desktop app whose API server speaks the OpenAI API on port 1337 and asks for an API key."""

from __future__ import annotations

from pathlib import Path

from oi_local import env
from oi_local.providers.base import find_program, keyword_api
from oi_local.providers.openai_compat import OpenAIServer

APP_LOCATIONS = (
    Path("/Applications/Jan.app"),
    Path("~/.local/share/Jan").expanduser(),
    Path("~/jan").expanduser(),
)


class Jan(OpenAIServer):
    name = "jan"
    title = "Jan"
    server_title = "Jan's API server"
    asks_key = True
    url_variable = env.JAN_API_BASE
    key_variable = env.JAN_API_KEY
    load_verb = "Start"
    # From the seed (language-models/local-models/janai.mdx), plus the API key newer Jan versions ask for.
    steps = (
        "Install the Jan desktop application from https://jan.ai/.",
        "Click the Hub icon on the left sidebar and download a model.",
        "Start the model: Settings → Models, the options icon next to it, Start Model.",
        'Settings → Advanced (or Local API Server): turn on "Enable API Server", and note its API key.',
        f"Set the key in the environment ({env.JAN_API_KEY.name}=...) or type it when asked.",
    )

    def installed(self) -> bool:
        return find_program("jan") is not None or find_program("Jan") is not None or any(p.exists() for p in APP_LOCATIONS)


PROVIDER = Jan()
detect, list_models, prepare = keyword_api(PROVIDER)
