"""Any OpenAI-compatible server at a URL the user gives."""

from __future__ import annotations

from oi_local.errors import OiLocalError
from oi_local.providers.base import ProviderContext, ProviderStatus, check_user_url, keyword_api
from oi_local.providers.openai_compat import OpenAIServer

EXAMPLE_URL = "http://127.0.0.1:8080/v1"


def validate_url(url: str) -> str:
    """The normalized URL (http(s), host, port; /v1 added when no path); raises OiLocalError."""
    return check_user_url(url)


class Custom(OpenAIServer):
    name = "custom"
    title = "Custom OpenAI-compatible URL"
    speaker = "The server"
    needs_url = True
    asks_key = True
    lists_models = False  # some servers serve whatever they were started with, under any id

    def base_url(self, ctx: ProviderContext) -> str:
        if not ctx.api_base:
            raise OiLocalError(f"The custom provider needs the server's address: pass --api_base URL (e.g. {EXAMPLE_URL}).")
        return validate_url(ctx.api_base)

    def detect(self, ctx: ProviderContext) -> ProviderStatus:
        if not ctx.api_base:
            return ProviderStatus(False, True, "any OpenAI-compatible server (asks for its URL)")
        return super().detect(ctx)

    def installed(self) -> bool:
        return True

    def not_running_detail(self, state: str, url: str, installed: bool) -> str:
        return f"not answering at {url}"

    def guidance(self, url: str) -> str:
        return (
            f"Nothing answers at {url}. Start your OpenAI-compatible server (llama.cpp's llama-server,\n"
            f"vLLM, text-generation-webui, ...) and give its address including the port and /v1,\n"
            f'for example {EXAMPLE_URL}. Then choose "Try again".'
        )

    def not_running_error(self, url: str) -> str:
        return (
            f"Nothing answers at {url}. Start your OpenAI-compatible server there (llama.cpp's llama-server, "
            f"vLLM, text-generation-webui, ...), or pass the address it listens on with --api_base URL, including "
            f"the port and /v1 (for example {EXAMPLE_URL}); then try again."
        )


PROVIDER = Custom()
detect, list_models, prepare = keyword_api(PROVIDER)
