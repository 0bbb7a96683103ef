"""Ollama, through the `ollama` client library against OLLAMA_HOST (default 127.0.0.1:11434)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from oi_local import env
from oi_local.endpoint import Endpoint
from oi_local.env import TIMEOUTS
from oi_local.errors import OiLocalError
from oi_local.files import format_bytes
from oi_local.models.catalog import Architecture
from oi_local.providers.base import (
    PROBE_TIMEOUT,
    ManagedChild,
    ModelChoice,
    Provider,
    ProviderContext,
    ProviderStatus,
    Served,
    find_program,
    http_json,
    inline_steps,
    wait_until,
)

NAME = "ollama"
# Without a reliable architecture, this much context is asked for (and never more than the model's).
FALLBACK_CONTEXT = 8192

INSTALL_STEPS = (
    "Download Ollama for your platform from https://ollama.com/download.",
    "Open the installed Ollama application and go through the setup.",
    "Download a model, e.g. `ollama pull qwen2.5-coder:1.5b` (or pick one here once Ollama runs).",
)
NOT_INSTALLED_HEAD = "Ollama is not installed (no `ollama` program on PATH, nothing answering at {host})."
NOT_INSTALLED = "\n".join(
    [NOT_INSTALLED_HEAD, *(f"  {n}. {step}" for n, step in enumerate(INSTALL_STEPS, 1)), 'Then choose "Try again".']
)

NOT_RUNNING = """Ollama is installed ({program}) but its server is not answering at {host}.
Start it with `ollama serve` (or open the Ollama app), or let this program start it for you now;
a server started here is stopped when you exit."""


def not_running_error(host: str, program: Path | None) -> str:
    """The one paragraph for the command line and Python when Ollama cannot be reached."""
    if program is None:
        return f"{NOT_INSTALLED_HEAD.format(host=host)} To install it: {inline_steps(INSTALL_STEPS)} Then try again."
    return (
        f"Ollama is installed ({program}) but its server is not answering at {host}. Start it with `ollama serve` "
        "(or open the Ollama app); `interpreter --local --provider ollama` also starts it for you. Then try again."
    )


@dataclass(frozen=True)
class OllamaModel:
    """A model Ollama's library offers that is worth recommending, with what the fit estimate needs."""

    tag: str
    size_bytes: int
    architecture: Architecture
    note: str


# Sizes are the library's Q4_K_M downloads; architectures from the models' GGUF headers.
RECOMMENDED: tuple[OllamaModel, ...] = (
    OllamaModel("qwen2.5-coder:7b", 4_683_087_332, Architecture(28, 4, 128, 32768), "strong coder"),
    OllamaModel("qwen2.5-coder:3b", 1_929_912_432, Architecture(36, 2, 128, 32768), "coder, small machines"),
    OllamaModel("qwen2.5-coder:1.5b", 986_061_892, Architecture(28, 2, 128, 32768), "coder, tiny machines"),
    OllamaModel("llama3.2:3b", 2_019_393_189, Architecture(28, 8, 128, 131072), "general chat"),
    OllamaModel("codestral:22b", 12_569_170_041, Architecture(56, 8, 128, 32768), "large coder"),
    OllamaModel("smollm2:135m", 270_898_672, Architecture(30, 3, 64, 8192), "tiny, for testing"),
)


def host_url(host: str | None = None) -> str:
    """OLLAMA_HOST as a URL, with localhost spelled 127.0.0.1 so that no name is looked up."""
    raw = (host or env.get(env.OLLAMA_HOST)).strip()
    if "://" not in raw:
        raw = "http://" + raw
    scheme, rest = raw.split("://", 1)
    hostport = rest.split("/", 1)[0]
    name, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
    if not name:
        name, port = port, ""
    if name in ("", "0.0.0.0", "localhost"):
        name = "127.0.0.1"
    return f"{scheme}://{name}:{port or '11434'}"


def client(host: str | None = None, timeout: float | None = None):
    import ollama

    return ollama.Client(host=host_url(host), timeout=timeout)


def program() -> Path | None:
    return find_program("ollama", ("/usr/local/bin", "~/.local/bin", "/Applications/Ollama.app/Contents/Resources"))


def server_version(host: str | None = None, timeout: float = PROBE_TIMEOUT) -> str | None:
    try:
        status, payload = http_json("GET", f"{host_url(host)}/api/version", timeout=timeout)
    except OSError:
        return None
    if status == 200 and isinstance(payload, dict):
        return str(payload.get("version") or "unknown")
    return None


def detect(*, api_base: str | None = None, timeout: float = PROBE_TIMEOUT) -> ProviderStatus:
    url = host_url(api_base)
    version = server_version(url, timeout)
    if version is not None:
        return ProviderStatus(True, True, f"running at {url} (version {version})")
    found = program()
    if found:
        return ProviderStatus(False, True, "installed, not running", NOT_RUNNING.format(program=found, host=url))
    return ProviderStatus(False, False, "not installed", NOT_INSTALLED.format(host=url))


def start_server(*, log_path: Path, api_base: str | None = None, timeout: float = TIMEOUTS.ollama_start) -> ManagedChild:
    """Start `ollama serve` as a child stopped at exit; wait until it answers."""
    found = program()
    url = host_url(api_base)
    if found is None:
        raise OiLocalError(not_running_error(url, None))
    child_env = dict(os.environ, OLLAMA_HOST=url.split("://", 1)[1])
    child = ManagedChild([str(found), "serve"], log_path=log_path, env=child_env)
    if not wait_until(lambda: server_version(url) is not None or not child.healthy(), timeout=timeout) or not child.healthy():
        tail = child.log_tail()
        child.stop()
        raise OiLocalError(
            f"`ollama serve` did not start answering at {url} within {timeout:.0f} s. "
            f"Its log ({log_path}) ends with:\n{tail}\nStart it yourself with `ollama serve` and try again."
        )
    return child


def _require_running(url: str) -> None:
    if server_version(url, timeout=TIMEOUTS.key_check) is None:
        raise OiLocalError(not_running_error(url, program()))


def local_models(*, api_base: str | None = None) -> list[ModelChoice]:
    """The models Ollama has on disk, with sizes."""
    url = host_url(api_base)
    _require_running(url)
    import ollama

    try:
        listing = client(url, timeout=TIMEOUTS.ollama_api).list()
    except (ollama.ResponseError, ConnectionError) as error:
        raise OiLocalError(f"Ollama at {url} could not list its models: {error}") from None
    out = []
    for model in listing.models:
        size = int(model.size) if model.size is not None else None
        details = model.details
        extra = ", ".join(x for x in (getattr(details, "parameter_size", None), getattr(details, "quantization_level", None)) if x)
        label = f"{model.model}  ({format_bytes(size)}{', ' + extra if extra else ''})"
        out.append(ModelChoice(id=str(model.model), label=label, size_bytes=size))
    return out


def recommended(hw, *, installed_tags: set[str] = frozenset()) -> list[ModelChoice]:
    """Library models worth pulling, those that fit first; the ones that do not fit say why."""
    from oi_local.models import fit as fitting

    out = []
    for model in RECOMMENDED:
        if model.tag in installed_tags or model.tag + ":latest" in installed_tags:
            continue
        estimate = fitting.fit_model(model.architecture, model.size_bytes, hw, bandwidth=fitting.machine_bandwidth(hw))
        label = f"{model.tag}  ({format_bytes(model.size_bytes)}, {model.note}{estimate.speed_suffix})"
        out.append(
            ModelChoice(
                id=model.tag, label=label, on_disk=False, fits=estimate.fits, reason=estimate.reason,
                size_bytes=model.size_bytes, context_length=model.architecture.context_length, recommended=estimate.fast_enough,
            )
        )
    out.sort(key=lambda c: (not c.fits,))
    return out


def list_models(*, api_base: str | None = None, hw=None) -> list[ModelChoice]:
    have = local_models(api_base=api_base)
    if hw is None:
        return have
    return have + recommended(hw, installed_tags={c.id for c in have})


def pull(model: str, *, api_base: str | None = None, progress: bool = True) -> None:
    """Pull a model with a progress bar from the streamed pull status; the server's own error on failure."""
    import ollama

    url = host_url(api_base)
    _require_running(url)
    stream = client(url).pull(model, stream=True)
    try:
        if not progress:
            for _ in stream:
                pass
            return
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        with Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), transient=False
        ) as bar:
            tasks: dict[str, int] = {}
            status_task = bar.add_task(f"ollama pull {model}", total=None)
            for part in stream:
                if part.digest and part.total:
                    if part.digest not in tasks:
                        tasks[part.digest] = bar.add_task(f"  {part.digest[7:19] or part.digest}", total=part.total)
                    bar.update(tasks[part.digest], completed=part.completed or 0, total=part.total)
                elif part.status:
                    bar.update(status_task, description=f"ollama pull {model}: {part.status}")
    except ollama.ResponseError as error:
        raise OiLocalError(
            f"Ollama could not pull '{model}'. The server said: {error.error}. "
            "Check the name at https://ollama.com/library (and that this machine can reach it), then try again."
        ) from None
    except ConnectionError as error:
        raise OiLocalError(f"Lost the connection to Ollama at {url} while pulling '{model}': {error}") from None


def model_facts(model: str, *, api_base: str | None = None) -> tuple[Architecture | None, int | None, int | None]:
    """(architecture, trained context length, size in bytes) from show() and the listing."""
    import ollama

    url = host_url(api_base)
    c = client(url, timeout=TIMEOUTS.ollama_api)
    try:
        shown = c.show(model)
    except ollama.ResponseError as error:
        raise OiLocalError(
            f"Ollama does not have '{model}': {error.error}. Pull it first (`ollama pull {model}`) "
            "or pick one from `interpreter --local`."
        ) from None
    info = dict(shown.modelinfo or {})
    arch_name = info.get("general.architecture")

    def number(key: str) -> int | None:
        value = info.get(f"{arch_name}.{key}")
        return int(value) if isinstance(value, (int, float)) else None

    context = number("context_length")
    size = None
    try:
        size = next((int(m.size) for m in c.list().models if m.model in (model, f"{model}:latest") and m.size), None)
    except ollama.ResponseError:
        pass
    blocks, heads, kv_heads, embed = number("block_count"), number("attention.head_count"), number("attention.head_count_kv"), number("embedding_length")
    head_dim = number("attention.key_length") or (embed // heads if embed and heads else None)
    arch = None
    if blocks and head_dim and context:
        arch = Architecture(
            block_count=blocks, kv_heads=kv_heads or heads or 1, head_dim=head_dim, context_length=context,
            embedding_length=embed, head_count=heads,
        )
    return arch, context, size


def choose_context(arch: Architecture | None, context: int | None, size: int | None, hw) -> tuple[int, int]:
    """(num_ctx, max_tokens): from the fit estimate when the architecture is known, else a safe default."""
    if arch is not None and size and hw is not None:
        from oi_local.models import fit as fitting

        estimate = fitting.fit_model(arch, size, hw)
        return estimate.n_ctx, estimate.max_tokens
    from oi_local.providers.openai_compat import max_tokens_for

    n_ctx = min(context or FALLBACK_CONTEXT, FALLBACK_CONTEXT)
    return n_ctx, max_tokens_for(n_ctx)


def prepare(
    model: str,
    *,
    api_base: str | None = None,
    hw=None,
    pull_missing: bool = True,
    progress: bool = True,
) -> Served:
    url = host_url(api_base)
    _require_running(url)
    tags = {c.id for c in local_models(api_base=url)}
    name = model.removeprefix("ollama_chat/").removeprefix("ollama/")
    if name not in tags and f"{name}:latest" not in tags:
        if not pull_missing:
            raise OiLocalError(f"Ollama has no model '{name}'. Pull it with `ollama pull {name}` and try again.")
        pull(name, api_base=url, progress=progress)
    arch, context, size = model_facts(name, api_base=url)
    n_ctx, max_tokens = choose_context(arch, context, size, hw)
    if context:
        n_ctx = min(n_ctx, context)
        max_tokens = min(max_tokens, n_ctx - 1)
    endpoint = Endpoint(
        api_base=url, model_id=name, api_key=None, context_window=n_ctx, max_tokens=max_tokens,
        provider=NAME, extra_body={"num_ctx": n_ctx},
        context_source="Ollama's show, fit to this machine" if arch is not None else "Ollama's show" if context
        else "fallback: Ollama did not say",
    )
    return Served(endpoint, None)


class Ollama(Provider):
    name = NAME
    title = "Ollama"
    can_start = True
    start_command = "ollama serve"
    menu_hint = "models to download are pulled first"
    steps = INSTALL_STEPS

    def detect(self, ctx: ProviderContext) -> ProviderStatus:
        return detect(api_base=ctx.api_base, timeout=ctx.probe_timeout)

    def list_models(self, ctx: ProviderContext) -> list[ModelChoice]:
        return list_models(api_base=ctx.api_base, hw=ctx.hw)

    def prepare(self, model: str, ctx: ProviderContext) -> Served:
        return prepare(model, api_base=ctx.api_base, hw=ctx.hw, progress=ctx.progress)

    def start_server(self, ctx: ProviderContext) -> ManagedChild:
        from oi_local.machine.paths import app_paths

        paths = ctx.paths or app_paths()
        return start_server(log_path=paths.logs / "ollama-serve.log", api_base=ctx.api_base)


PROVIDER = Ollama()
