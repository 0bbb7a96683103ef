"""Jan: a desktop app whose API server speaks the OpenAI API on port 1337 and asks for an API key."""

from __future__ import annotations

from oi_local import env
from oi_local.providers.base import keyword_api
from oi_local.providers.openai_compat import OpenAIServer


class Jan(OpenAIServer):
    name = "jan"
    title = "Jan"
    server_title = "Jan's API server"
    asks_key = True
    url_variable = env.JAN_API_BASE
    key_variable = env.JAN_API_KEY
    load_verb = "Start"
    programs = ("jan", "Jan")
    app_locations = ("/Applications/Jan.app", "~/.local/share/Jan", "~/jan")
    # From the seed (language-models/local-models/janai.mdx), plus the API key newer Jan versions ask for.
    steps = (
        "Install the Jan desktop application from https://jan.ai/.",
        "Click the Hub icon on the left sidebar and download a model.",
        "Start the model: Settings → Models, the options icon next to it, Start Model.",
        'Settings → Advanced (or Local API Server): turn on "Enable API Server", and note its API key.',
        f"Set the key in the environment ({env.JAN_API_KEY.name}=...) or type it when asked.",
    )


PROVIDER = Jan()
detect, list_models, prepare = keyword_api(PROVIDER)
