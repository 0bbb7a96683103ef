"""What every provider shares: the Provider type, the context it is called with, its status, the models it
offers, and a fast loopback-only HTTP probe.

Kept to the standard library so that probing every provider for the first menu stays fast.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from oi_local.env import TIMEOUTS
from oi_local.errors import OiLocalError
from oi_local.serving.process import ManagedChild, wait_until  # noqa: F401  (moved there; providers import them here)

if TYPE_CHECKING:
    from oi_local.endpoint import Endpoint
    from oi_local.machine.hardware import Hardware
    from oi_local.machine.paths import AppPaths

PROBE_TIMEOUT = TIMEOUTS.provider_probe
LOOPBACK_NAMES = {"localhost": "127.0.0.1", "127.0.0.1": "127.0.0.1", "::1": "::1", "[::1]": "::1"}


@dataclass(frozen=True)
class ProviderStatus:
    running: bool
    installed: bool
    detail: str  # one line for the menu, e.g. "running at http://127.0.0.1:1234 · 2 models"
    guidance: str = ""  # what to do when it is not running or not installed; empty when running


@dataclass(frozen=True)
class ModelChoice:
    """One line of a provider's model menu."""

    id: str  # what prepare() takes: a catalog id, a path, an Ollama tag, a server's model id
    label: str
    on_disk: bool = True  # False: would be downloaded / pulled first
    fits: bool = True
    reason: str = ""  # why it does not fit, or a note
    size_bytes: int | None = None
    context_length: int | None = None
    recommended: bool = False


@dataclass(frozen=True)
class ServeOptions:
    """How a built-in provider starts its server; `oi-local serve`'s flags. Local mode keeps the defaults."""

    host: str = "127.0.0.1"
    port: int | None = None  # None: a free port
    api_key: str | None = None  # None: a random key
    n_gpu_layers: int | None = None  # None: as many as fit


@dataclass(frozen=True)
class ProviderContext:
    """Everything one call of a provider may use, built once by its caller (change it with dataclasses.replace)."""

    paths: AppPaths | None = None
    hw: Hardware | None = None  # probed once by the caller; a provider that needs it probes when None
    api_base: str | None = None  # the address of a server someone else runs (None: the provider's default)
    api_key: str | None = None  # for that server (None: the provider's environment variable, if it has one)
    fresh_server: bool = False  # start a new server even if a matching one is running
    progress: bool = True  # show download / pull progress
    context_window: int | None = None
    max_tokens: int | None = None
    timeout: float | None = None  # how long detect() waits for an answer (None: PROBE_TIMEOUT)
    start_server: bool = False  # a provider that can_start starts its server when it is installed but not running
    catalog: tuple | None = None  # the model catalog's entries, when the caller has loaded them already
    serve: ServeOptions = ServeOptions()
    offline: bool = False  # only models already on disk: nothing is downloaded, no name is even looked up
    verify: bool = False  # hash a stored model file in full before it is used, whatever its fingerprint says

    @property
    def probe_timeout(self) -> float:
        return self.timeout if self.timeout is not None else PROBE_TIMEOUT


class Served(NamedTuple):
    """What prepare() gives back: the endpoint, and the server process when this program started one."""

    endpoint: Endpoint
    server: Any = None  # ManagedServer (built-in providers), ManagedChild (`ollama serve`), or None


class Provider:
    """One product that can serve a model. The explorer and the commands ask its attributes and methods and
    never its name; a new provider is one subclass instance in the registry (oi_local/providers/__init__.py).
    """

    name: str = ""  # what --provider takes
    title: str = ""  # what the menus and the summary line show
    builtin: bool = False  # served by this program (llama.cpp, Llamafile) rather than by another one
    format: str | None = None  # built-in providers: the model files they serve ("gguf", "llamafile")
    needs_url: bool = False  # has no default address: the user gives one (--api_base / a prompt)
    asks_key: bool = False  # its server may ask for an API key, which the explorer then asks for
    can_start: bool = False  # start_server() can start its server when it is installed but not running
    start_command: str = ""  # what can_start runs, as the user would type it
    key_env: str | None = None  # the environment variable its API key may come from
    listed_as: str = "on disk"  # heading of the models it has ready in the model menu
    menu_hint: str = ""  # a note after "<title>: choose a model"
    steps: tuple[str, ...] = ()  # how to get its server running, shown wherever it is not
    server_title: str = ""  # its server in a sentence ("LM Studio's server"); default: the title

    def detect(self, ctx: ProviderContext) -> ProviderStatus:
        raise NotImplementedError

    def list_models(self, ctx: ProviderContext) -> list[ModelChoice]:
        raise NotImplementedError

    def prepare(self, model: str, ctx: ProviderContext) -> Served:
        raise NotImplementedError

    def key_refused(self, ctx: ProviderContext) -> bool:
        """True when its server asks for an API key that ctx does not give (or refuses the one it gives)."""
        return False

    def start_server(self, ctx: ProviderContext) -> ManagedChild:
        raise OiLocalError(f"{self.title} cannot be started from here; start it yourself, then try again.")

    def check_url(self, text: str) -> str:
        """The address the user typed, normalized; raises OiLocalError with what to type instead."""
        return check_user_url(text)

    def guidance(self, url: str) -> str:
        """For the menus: why it is not usable and the steps to fix that, one per line."""
        lines = [f"{self.server_title or self.title} is not running at {url}. To run it:"]
        lines += [f"  {number}. {step}" for number, step in enumerate(self.steps, 1)]
        lines.append('Once the server is running, choose "Try again".')
        return "\n".join(lines)

    def not_running_error(self, url: str) -> str:
        """For the command line and Python: the same as one paragraph."""
        server = self.server_title or self.title
        return f"Nothing answers at {url}: {server} is not running. To start it: {inline_steps(self.steps)} Then try again."

    def __repr__(self) -> str:
        return f"<provider {self.name}>"


def inline_steps(steps: Sequence[str]) -> str:
    return " ".join(f"{number}. {step}" for number, step in enumerate(steps, 1))


def keyword_api(provider: Provider):
    """(detect, list_models, prepare) taking ProviderContext's fields as keywords, for scripts and tests:
    `lmstudio.detect(api_base=URL)` is `lmstudio.PROVIDER.detect(ProviderContext(api_base=URL))`."""

    def detect(**fields: Any) -> ProviderStatus:
        return provider.detect(ProviderContext(**fields))

    def list_models(**fields: Any) -> list[ModelChoice]:
        return provider.list_models(ProviderContext(**fields))

    def prepare(model: str, **fields: Any) -> Served:
        return provider.prepare(model, ProviderContext(**fields))

    return detect, list_models, prepare


@dataclass
class ServerModels:
    """What an OpenAI-compatible server says it offers."""

    ids: list[str]
    loaded: dict[str, bool] = field(default_factory=dict)
    max_context: dict[str, int] = field(default_factory=dict)


def split_base_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of an http(s) URL; raises OiLocalError for anything else."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OiLocalError(
            f"'{url}' is not an http(s) URL. Give the server's address with its scheme and port, "
            "for example http://127.0.0.1:8080/v1."
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        raise OiLocalError(f"'{url}' has an invalid port ({error}). Use a number from 1 to 65535.") from None
    host = LOOPBACK_NAMES.get(parts.hostname, parts.hostname)
    return parts.scheme, host, port, parts.path.rstrip("/")


def normalize_base_url(url: str, *, default_path: str = "/v1") -> str:
    """The URL with localhost spelled 127.0.0.1 (no name lookup) and `/v1` added when no path was given."""
    scheme, host, port, path = split_base_url(url)
    host_part = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host_part}:{port}{path or default_path}"


def check_user_url(text: str | None) -> str:
    """A URL the user typed (scheme optional; /v1 added when no path), normalized; raises OiLocalError."""
    if not text or not text.strip():
        raise OiLocalError("No URL given. Type the server's address, for example http://127.0.0.1:8080/v1.")
    text = text.strip()
    if "://" not in text:
        text = "http://" + text
    return normalize_base_url(text)


def http_json(
    method: str,
    url: str,
    *,
    body: dict | None = None,
    api_key: str | None = None,
    timeout: float = PROBE_TIMEOUT,
) -> tuple[int, object]:
    """One HTTP request; returns (status, parsed JSON or text).

    Plain HTTP/1.0 over a socket: http.client (with ssl and email) would cost the first menu ~30 ms of
    imports for a few loopback probes. Raises OSError (refused, timeout, garbled reply) for the caller to
    treat as "not running".
    """
    scheme, host, port, _ = split_base_url(url)
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    data = b"" if body is None else json.dumps(body).encode()
    if scheme == "https":
        return _https_json(method, host, port, target, data, api_key, timeout)
    host_header = f"[{host}]" if ":" in host else host
    lines = [f"{method} {target} HTTP/1.0", f"Host: {host_header}:{port}", "Accept: application/json", "Connection: close"]
    if api_key:
        lines.append(f"Authorization: Bearer {api_key}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + data
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    head, _, raw = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(status_line.split()[1])
    except (IndexError, ValueError):
        raise OSError(f"not an HTTP reply from {host}:{port}") from None
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        raw = _dechunk(raw)
    return status, _parse(raw)


def _dechunk(raw: bytes) -> bytes:
    out, rest = [], raw
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2:]
    return b"".join(out)


def _parse(raw: bytes) -> object:
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _https_json(method: str, host: str, port: int, target: str, data: bytes, api_key: str | None, timeout: float):
    import http.client

    conn = http.client.HTTPSConnection(host, port, timeout=timeout)
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    if data:
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, target, body=data or None, headers=headers)
        response = conn.getresponse()
        return response.status, _parse(response.read())
    except http.client.HTTPException as error:
        raise OSError(str(error)) from error
    finally:
        conn.close()


def openai_models(base_url: str, *, api_key: str | None = None, timeout: float = PROBE_TIMEOUT) -> tuple[int, list[str]]:
    """(HTTP status, model ids) from GET {base_url}/models. Raises OSError when nothing answers."""
    status, payload = http_json("GET", f"{base_url.rstrip('/')}/models", api_key=api_key, timeout=timeout)
    ids: list[str] = []
    if status == 200 and isinstance(payload, dict):
        ids = [str(m.get("id")) for m in payload.get("data") or [] if isinstance(m, dict) and m.get("id")]
    return status, ids


def find_program(name: str, extra_dirs: Sequence[Path] = ()) -> Path | None:
    found = shutil.which(name)
    if found:
        return Path(found)
    for folder in extra_dirs:
        candidate = Path(folder).expanduser() / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None
