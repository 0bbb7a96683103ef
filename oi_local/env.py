"""Every environment variable oi_local reads or sets, and every timeout it uses, each with its default and meaning.

Nothing else in the program calls os.environ.get for a setting of its own: it asks `get(NAME)` here (which
passes an `environ` mapping through, for tests and callers with an environment of their own). Child
processes are given `dict(os.environ)` plus what they need; that is not a read of a setting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

TRUTHY = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class Variable:
    name: str
    default: str | None
    meaning: str


# ---- read by oi_local ------------------------------------------------------------------------------------
OI_LOCAL_HOME = Variable("OI_LOCAL_HOME", None, "one folder for all of oi_local's files (config/, models/, logs/, ...)")
OLLAMA_HOST = Variable("OLLAMA_HOST", "127.0.0.1:11434", "where Ollama's server listens (Ollama's own variable)")
OLLAMA_MODELS = Variable("OLLAMA_MODELS", None, "Ollama's models folder (Ollama's own variable; default ~/.ollama/models)")
OI_LOCAL_OFFLINE = Variable("OI_LOCAL_OFFLINE", None,
                            "1: never download a model; 0: downloads allowed even where an offline bundle made "
                            "offline the default (<config>/offline.json, written by its install.sh)")
LMSTUDIO_API_BASE = Variable("LMSTUDIO_API_BASE", "http://127.0.0.1:1234/v1", "LM Studio's OpenAI-compatible server")
JAN_API_BASE = Variable("JAN_API_BASE", "http://127.0.0.1:1337/v1", "Jan's OpenAI-compatible server")
JAN_API_KEY = Variable("JAN_API_KEY", None, "the API key Jan's server asks for")
HF_ENDPOINT = Variable("HF_ENDPOINT", "https://huggingface.co", "the Hugging Face hub to download from (huggingface_hub's own)")
HF_HUB_OFFLINE = Variable("HF_HUB_OFFLINE", None, "when true, the hub is never contacted (huggingface_hub's own)")
TRANSFORMERS_OFFLINE = Variable("TRANSFORMERS_OFFLINE", None, "an older spelling of HF_HUB_OFFLINE, honoured too")
HF_HUB_DISABLE_TELEMETRY = Variable("HF_HUB_DISABLE_TELEMETRY", "1", "huggingface_hub sends no telemetry")
LITELLM_LOCAL_MODEL_COST_MAP = Variable("LITELLM_LOCAL_MODEL_COST_MAP", "True",
                                        "litellm reads its bundled cost map instead of fetching one")
EDITOR = Variable("EDITOR", None, "the editor for `e` at the confirmation prompt (VISUAL first)")
VISUAL = Variable("VISUAL", None, "the editor for `e` at the confirmation prompt")
DISPLAY = Variable("DISPLAY", None, "an X display: folders may be opened in the file manager")
WAYLAND_DISPLAY = Variable("WAYLAND_DISPLAY", None, "a Wayland display: folders may be opened in the file manager")
XDG_DATA_HOME = Variable("XDG_DATA_HOME", None, "per-user data folder on Linux (XDG; default ~/.local/share): the "
                         "offline bundle's installer puts oi_local's venv and models there, as platformdirs does")
OI_LOCAL_THREADS = Variable("OI_LOCAL_THREADS", None,
                            "threads of the llama.cpp servers oi_local starts (default: chosen for the machine's "
                            "load as each starts: every physical core when idle, the free ones when busy)")
OI_LOCAL_TIMEOUT_SCALE = Variable("OI_LOCAL_TIMEOUT_SCALE", "1",
                                  "multiplies every timeout below (a slow or loaded machine: 2, 3, ...)")

# ---- set by oi_local before a library reads them (only where the user did not set them) -----------------
OFFLINE_ENV: dict[str, str] = {
    LITELLM_LOCAL_MODEL_COST_MAP.name: "True",  # litellm: the bundled cost map, not a fetch from GitHub
    "LITELLM_TELEMETRY": "False",
    HF_HUB_DISABLE_TELEMETRY.name: "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "DO_NOT_TRACK": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
}


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def get(variable: Variable, environ: Mapping[str, str] | None = None) -> str | None:
    """The variable's value, or its default when it is unset or empty."""
    value = _env(environ).get(variable.name)
    return value if value else variable.default


def flag(variable: Variable, environ: Mapping[str, str] | None = None) -> bool:
    return (get(variable, environ) or "").strip().lower() in TRUTHY


def apply_offline(environ: MutableMapping[str, str] | None = None) -> None:
    """Set the offline environment (values the user set explicitly are kept)."""
    env = os.environ if environ is None else environ
    for key, value in OFFLINE_ENV.items():
        env.setdefault(key, value)


def hub_offline(environ: Mapping[str, str] | None = None) -> bool:
    """No download may be tried: HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE), OI_LOCAL_OFFLINE, or else the
    offline default an offline bundle's install wrote (<config>/offline.json)."""
    if flag(HF_HUB_OFFLINE, environ) or flag(TRANSFORMERS_OFFLINE, environ):
        return True
    choice = get(OI_LOCAL_OFFLINE, environ)
    if choice is not None:
        return choice.strip().lower() in TRUTHY
    return offline_default(environ) is not None


def offline_default(environ: Mapping[str, str] | None = None) -> str | None:
    """Why offline is this installation's default (a sentence), or None. Read from <config>/offline.json."""
    import json

    from oi_local.machine.paths import app_paths

    path = app_paths(dict(_env(environ))).offline_default
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("offline") is not True:
        return None
    return (f"offline is the default here ({path}, written by {data.get('written_by') or 'an offline bundle'}); "
            f"set {OI_LOCAL_OFFLINE.name}=0 to allow downloads")


def offline_reason(environ: Mapping[str, str] | None = None) -> str:
    """Why hub_offline() is true, for an error message."""
    if flag(HF_HUB_OFFLINE, environ) or flag(TRANSFORMERS_OFFLINE, environ):
        return f"{HF_HUB_OFFLINE.name} is set"
    if get(OI_LOCAL_OFFLINE, environ) is not None:
        return f"{OI_LOCAL_OFFLINE.name} is set"
    return offline_default(environ) or "offline mode is on"


def set_hub_offline(environ: MutableMapping[str, str] | None = None) -> None:
    """From here on the hub is never contacted (huggingface_hub honours HF_HUB_OFFLINE)."""
    env = os.environ if environ is None else environ
    env[HF_HUB_OFFLINE.name] = "1"


# ---- set for the llama.cpp server child (only where the user did not set them) -----------------------------
OMP_WAIT_POLICY = Variable(
    "OMP_WAIT_POLICY", "PASSIVE",
    "OpenMP's waiting threads in the llama.cpp server sleep instead of spinning; set by oi_local only when the "
    "machine is busy as the server starts (machine/threads.py: spinning threads decode 20-30x slower when another "
    "process wants a core, and fastest on an idle machine)",
)


def llama_server_additions(environ: Mapping[str, str] | None = None, *, passive: bool = True) -> dict[str, str]:
    """What a llama.cpp server child gets on top of our environment: OMP_WAIT_POLICY=PASSIVE when `passive`,
    unless the user set it."""
    if not passive or _env(environ).get(OMP_WAIT_POLICY.name):
        return {}
    return {OMP_WAIT_POLICY.name: OMP_WAIT_POLICY.default or "PASSIVE"}


def server_threads(environ: Mapping[str, str] | None = None) -> int | None:
    """OI_LOCAL_THREADS as a thread count, or None when unset; a value that is not a whole number from 1 is a
    clear error."""
    from oi_local.errors import OiLocalError

    value = (get(OI_LOCAL_THREADS, environ) or "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise OiLocalError(f"OI_LOCAL_THREADS is {value!r}, which is not a thread count. Set it to a whole number "
                           "from 1 (for example the number of physical cores), or unset it to let oi_local choose "
                           "for the machine's load.")
    return int(value)


def llama_server_env(environ: Mapping[str, str] | None = None, *, passive: bool = True) -> dict[str, str]:
    """The whole environment of a llama.cpp server child: ours plus llama_server_additions."""
    return {**_env(environ), **llama_server_additions(environ, passive=passive)}


# ---- timeouts (seconds) ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Timeouts:
    provider_probe: float = 0.3  # each provider's loopback probe for the first menu (all run at once)
    provider_check: float = 1.0  # one provider checked again after the user picked it
    key_check: float = 2.0  # does a server ask for (or refuse) an API key
    server_models: float = 3.0  # GET /models of a server someone else runs
    server_context: float = 2.0  # each question to a server about its context window (/props, /api/show, ...)
    context_probe: float = 10.0  # llama-cpp-python's answer to an over-long prompt (it says its context)
    ollama_api: float = 10.0  # Ollama's list and show
    ollama_start: float = 30.0  # `ollama serve` started here until it answers
    hardware_tool: float = 5.0  # nvidia-smi, rocm-smi, sysctl
    system_profiler: float = 15.0  # macOS system_profiler (slow on first call)
    llama_build_check: float = 60.0  # a child process importing llama_cpp to ask whether it can use a GPU
    health_request: float = 2.0  # one GET /v1/models to a server this program started
    stop_grace: float = 5.0  # SIGTERM to SIGKILL when stopping a process tree
    watchdog_poll: float = 0.2  # how often a server's watchdog checks that one of its users still runs
    watchdog_start: float = 30.0  # the watchdog reporting that it has spawned its server
    llm_silence: float = 300.0  # no byte from the model server for this long ends the request
    tokenize: float = 3.0  # the server's tokenizer route
    download_read: float = 30.0  # no byte from a download for this long is a failure (then retried)
    hub_metadata: float = 10.0  # the hub's answer about a file (HEAD): huggingface_hub's own default
    kernel_ready: float = 60.0  # the Python kernel answering after its start
    code_run: float = 300.0  # one code block's run (computer.run); None from a caller means no limit
    code_stop_step: float = 1.0  # a stopped shell/node run: interrupt, then each harder step this much later
    safe_mode_scan: float = 120.0  # semgrep over one code block
    python_probe: float = 60.0  # an installed Python asked for its version (the offline bundle's installer)
    self_check_reply: float = 120.0  # the offline bundle's self-check: one short reply from the model's server

    def scaled(self, factor: float) -> Timeouts:
        if factor == 1:
            return self
        return Timeouts(**{name: value * factor for name, value in self.__dict__.items()})


def timeouts(environ: Mapping[str, str] | None = None) -> Timeouts:
    try:
        factor = float(get(OI_LOCAL_TIMEOUT_SCALE, environ) or 1)
    except ValueError:
        factor = 1.0
    return Timeouts().scaled(factor if factor > 0 else 1.0)


TIMEOUTS = timeouts()
