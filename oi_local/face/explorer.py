"""The local explorer: the questionary menus of `interpreter --local`, on top of the providers.

The only module of local mode that asks questions. Escape goes back one level; Ctrl-C leaves cleanly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from oi_local import env, providers
from oi_local.env import TIMEOUTS
from oi_local.errors import OiLocalError
from oi_local.face.last_choice import LastChoice
from oi_local.machine.paths import AppPaths
from oi_local.providers.base import ProviderStatus

BACK = "__oi_back__"
TRY_AGAIN = "__oi_retry__"
START_OLLAMA = "__oi_start_ollama__"
DOWNLOAD = "__oi_download__"
IMPORT = "__oi_import__"
TYPE_ID = "__oi_type_id__"
EXTERNAL = ("ollama", "lmstudio", "jan")  # preselected when running: the user started them on purpose


class Cancelled(Exception):
    """Ctrl-C in a menu: leave the explorer without a traceback."""


@dataclass
class Picked:
    endpoint: Any  # Endpoint
    server: Any  # ManagedServer / ManagedChild / None
    choice: LastChoice


# --- prompts ---------------------------------------------------------------------------------------------


def escape_answers(question, result: Any) -> None:
    """Make Escape end a questionary question with `result` (its other key bindings stay)."""
    from prompt_toolkit.key_binding import KeyBindings, merge_key_bindings

    escape = KeyBindings()

    @escape.add("escape", eager=True)
    def _escape(event) -> None:
        event.app.exit(result=result)

    app = question.application
    app.key_bindings = merge_key_bindings([app.key_bindings, escape]) if app.key_bindings else escape


def _ask(question) -> Any:
    """Run a questionary question; Escape answers BACK, Ctrl-C raises Cancelled."""
    escape_answers(question, BACK)
    app = question.application
    app.ttimeoutlen = 0.05  # Escape alone is recognised quickly (arrow keys start with Escape too)
    try:
        answer = question.unsafe_ask()
    except (KeyboardInterrupt, EOFError):
        raise Cancelled from None
    return BACK if answer is None else answer


def _select(message: str, choices: list, default: Any = None) -> Any:
    import questionary

    values = [c.value if isinstance(c, questionary.Choice) else c for c in choices]
    use_default = default if default in values else None
    return _ask(
        questionary.select(
            message, choices=choices, default=use_default, instruction="(↑/↓, Enter; Esc: back)",
            use_shortcuts=False,
        )
    )


def _say(text: str = "") -> None:
    print(text, flush=True)


# --- first screen: hardware and providers ----------------------------------------------------------------


def hardware_summary(hw) -> str:
    from oi_local.files import format_bytes

    if hw is None:
        return "Hardware: unknown"
    ram = format_bytes(hw.total_ram_bytes) if hw.total_ram_bytes else "unknown"
    free = f" ({format_bytes(hw.available_ram_bytes)} free)" if hw.available_ram_bytes else ""
    if hw.gpus:
        gpu = ", ".join(
            f"{g.name}" + (f" {format_bytes(g.total_vram_bytes)}" if g.total_vram_bytes else "") + f" [{g.backend}]"
            for g in hw.gpus
        )
    else:
        gpu = "none"
    disk = format_bytes(hw.free_disk_bytes) + " free" if hw.free_disk_bytes is not None else "unknown"
    return f"RAM {ram}{free} · GPU {gpu} · disk {disk}"


def survey(paths: AppPaths, *, api_base: str | None = None) -> tuple[Any, dict[str, ProviderStatus]]:
    """Probe the hardware and every provider at once (threads; each probe is loopback-only and short)."""
    from oi_local.machine import hardware

    def detect(name: str) -> ProviderStatus:
        module = providers.get(name)
        try:
            if name in ("llamacpp", "llamafile"):
                return module.detect(paths=paths)
            if name == "custom":
                return module.detect(api_base=None)
            return module.detect()
        except Exception as error:  # a broken probe must not hide the other providers
            return ProviderStatus(False, False, f"could not check ({type(error).__name__}: {error})")

    results: dict[str, object] = {}

    def work(key: str, fn, *args) -> None:
        try:
            results[key] = fn(*args)
        except Exception:
            results[key] = None

    threads = [threading.Thread(target=work, args=("hw", hardware.probe, paths.models), daemon=True)]
    threads += [threading.Thread(target=work, args=(name, detect, name), daemon=True) for name in providers.ORDER]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    hw = results.get("hw")
    statuses = {
        name: results.get(name) or ProviderStatus(False, False, "could not check") for name in providers.ORDER
    }
    return hw, statuses


def preselect(statuses: dict[str, ProviderStatus], last: LastChoice | None) -> str:
    if last is not None and last.provider in statuses:
        return last.provider
    for name in EXTERNAL:
        if statuses[name].running:
            return name
    return "llamacpp"


def provider_menu(statuses: dict[str, ProviderStatus], default: str) -> str:
    import questionary

    choices = []
    for name in providers.ORDER:
        status = statuses[name]
        mark = "●" if status.running else ("○" if status.installed else "·")
        choices.append(questionary.Choice(f"{mark} {providers.TITLES[name]:<30} {status.detail}", value=name))
    return _select("Choose a provider:", choices, default=default)


# --- per-provider model menus -------------------------------------------------------------------------------


def _not_running(status: ProviderStatus, *, can_start_ollama: bool = False) -> str:
    import questionary

    _say("")
    _say(status.guidance or status.detail)
    _say("")
    choices = []
    if can_start_ollama:
        choices.append(questionary.Choice("Start `ollama serve` now (stopped when you exit)", value=START_OLLAMA))
    choices += [questionary.Choice("Try again", value=TRY_AGAIN), questionary.Choice("Back", value=BACK)]
    return _select("What now?", choices, default=choices[0].value)


def _model_menu(models, *, title: str, extra: list, default: str | None = None, have: str = "on disk") -> str:
    import questionary

    choices: list = []
    on_disk = [m for m in models if m.on_disk]
    others = [m for m in models if not m.on_disk]
    if on_disk:
        choices.append(questionary.Separator(f"── {have} ──"))
        choices += [questionary.Choice(m.label, value=m.id, disabled=None if m.fits else (m.reason or "does not fit")) for m in on_disk]
    if others:
        choices.append(questionary.Separator("── to download ──"))
        for m in others:
            if m.fits:
                choices.append(questionary.Choice(m.label, value=m.id))
            else:
                choices.append(questionary.Choice(m.label, value=m.id, disabled=m.reason or "does not fit"))
    if extra:
        choices.append(questionary.Separator("──"))
        choices += extra
    choices.append(questionary.Choice("Back", value=BACK))
    enabled = [c.value for c in choices if isinstance(c, questionary.Choice) and not c.disabled]
    return _select(title, choices, default=default if default in enabled else (enabled[0] if enabled else None))


def _builtin_model(name: str, paths: AppPaths, hw, last: LastChoice | None) -> str:
    """llama.cpp / Llamafile: a model id or path; BACK."""
    import questionary

    module = providers.get(name)
    from oi_local.providers import builtin

    entries = builtin.load_catalog(paths)
    while True:
        models = module.list_models(paths=paths, hw=hw, entries=entries)
        default = last.model if last is not None and last.provider == name else None
        extra = [questionary.Choice("Download…", value=DOWNLOAD), questionary.Choice("Import a file…", value=IMPORT)]
        picked = _model_menu(models, title=f"{providers.TITLES[name]}: choose a model", extra=extra, default=default)
        if picked == DOWNLOAD:
            pool = [c for c in models if not c.on_disk]
            choices = [questionary.Choice(c.label + ("" if c.fits else "  [may not fit]"), value=c.id) for c in pool]
            if not choices:
                _say("Every catalog model of this kind is already on disk.")
                continue
            chosen = _select("Download which model?", [*choices, questionary.Choice("Back", value=BACK)])
            if chosen == BACK:
                continue
            return chosen
        if picked == IMPORT:
            suffix = builtin.SUFFIX[module.FORMAT]
            path = _ask(questionary.path(f"Path to a {suffix} file:", validate=lambda p, s=suffix: _valid_file(p, s)))
            if path == BACK:
                continue
            try:
                return builtin.import_file(path, paths=paths, entries=entries)
            except OiLocalError as error:
                _say(f"Error: {error}")
                continue
        return picked


def _valid_file(text: str, suffix: str) -> bool | str:
    from pathlib import Path

    path = Path(text).expanduser()
    if not text:
        return "Type a path"
    if not path.is_file():
        return "No such file"
    if not path.name.endswith(suffix) and suffix != ".gguf":
        return f"Expected a {suffix} file"
    return True


def _ollama_model(paths: AppPaths, hw, last: LastChoice | None) -> tuple[str, Any] | str:
    """(tag, started ollama serve or None), or BACK."""
    from oi_local.providers import ollama

    started = None
    while True:
        status = ollama.detect(timeout=TIMEOUTS.provider_check)
        if not status.running:
            what = _not_running(status, can_start_ollama=status.installed and started is None)
            if what == BACK:
                return BACK
            if what == START_OLLAMA:
                try:
                    started = ollama.start_server(log_path=paths.logs / "ollama-serve.log")
                except OiLocalError as error:
                    _say(f"Error: {error}")
            continue
        try:
            models = ollama.list_models(hw=hw)
        except OiLocalError as error:
            _say(f"Error: {error}")
            what = _not_running(ProviderStatus(False, True, str(error), str(error)))
            if what == BACK:
                return BACK
            continue
        default = last.model if last is not None and last.provider == "ollama" else None
        picked = _model_menu(models, title="Ollama: choose a model (models to download are pulled first)", extra=[], default=default)
        if picked == BACK:
            if started is not None:
                started.stop()
            return BACK
        return picked, started


def _openai_model(name: str, *, api_base: str | None, api_key: str | None, last: LastChoice | None) -> tuple[str, str | None, str | None] | str:
    """LM Studio, Jan, custom: (model id, api_base, api_key) or BACK."""
    import questionary

    module = providers.get(name)
    if name == "custom" and not api_base:
        default_url = last.api_base if last is not None and last.provider == "custom" and last.api_base else "http://127.0.0.1:8080/v1"
        answer = _ask(questionary.text("Server URL (OpenAI-compatible):", default=default_url, validate=_valid_url))
        if answer == BACK:
            return BACK
        api_base = module.validate_url(answer)
    while True:
        status = module.detect(api_base=api_base, timeout=TIMEOUTS.provider_check) if name != "jan" else module.detect(api_base=api_base, api_key=api_key, timeout=TIMEOUTS.provider_check)
        if not status.running:
            if _not_running(status) == BACK:
                return BACK
            continue
        if name in ("jan", "custom") and _key_refused(module, name, api_base, api_key):
            hint = f" (or set {module.API_KEY_ENV})" if name == "jan" else ""
            key = _ask(questionary.password(f"{module.TITLE} asks for an API key{hint}:"))
            if key == BACK:
                return BACK
            api_key = key.strip() or None
            continue
        try:
            models = module.list_models(api_base=api_base, api_key=api_key)
        except OiLocalError as error:
            _say(f"Error: {error}")
            if _not_running(ProviderStatus(False, True, str(error), str(error))) == BACK:
                return BACK
            continue
        extra = [questionary.Choice("Type a model id…", value=TYPE_ID)] if name == "custom" or not models else []
        default = last.model if last is not None and last.provider == name else None
        if not models and name != "custom":
            _say(f"{module.TITLE} answers but offers no model yet: load or start one in {module.TITLE}, then try again.")
        picked = _model_menu(models, title=f"{module.TITLE}: choose a model", extra=extra, default=default, have="offered by the server")
        if picked == TYPE_ID:
            typed = _ask(questionary.text("Model id:", validate=lambda t: bool(t.strip()) or "Type the model's id"))
            if typed == BACK:
                continue
            picked = typed.strip()
        if picked == BACK:
            return BACK
        return picked, api_base, api_key


def _key_refused(module, name: str, api_base: str | None, api_key: str | None) -> bool:
    from oi_local.providers import openai_compat

    url = module.base_url(api_base) if name == "jan" else module.validate_url(api_base)
    key = api_key or (module.api_key_from_env() if name == "jan" else None)
    state, _ = openai_compat.probe(url, api_key=key, timeout=TIMEOUTS.key_check)
    return state in ("needs_key", "bad_key")


def _valid_url(text: str) -> bool | str:
    from oi_local.providers import custom

    try:
        custom.validate_url(text)
    except OiLocalError as error:
        return str(error).split(". ")[0]
    return True


# --- the whole flow -------------------------------------------------------------------------------------------


def explore(
    paths: AppPaths,
    *,
    last: LastChoice | None = None,
    provider: str | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
    fresh_server: bool = False,
    context_window: int | None = None,
    max_tokens: int | None = None,
) -> Picked | None:
    """Menus until a model is served; None when the user leaves. Raises Cancelled on Ctrl-C."""
    from oi_local.face.local_mode import prepare_endpoint

    hw, statuses = survey(paths)
    _say(hardware_summary(hw))
    fixed_provider = provider
    default = preselect(statuses, last)
    while True:
        name = fixed_provider or provider_menu(statuses, default)
        if name == BACK:
            return None
        started = None
        key = api_key
        base = api_base
        if name in ("llamacpp", "llamafile"):
            model = _builtin_model(name, paths, hw, last)
        elif name == "ollama":
            result = _ollama_model(paths, hw, last)
            model, started = result if result != BACK else (BACK, None)
        else:
            result = _openai_model(name, api_base=api_base, api_key=api_key or (env.get(env.JAN_API_KEY) if name == "jan" else None), last=last)
            model, base, key = result if result != BACK else (BACK, None, None)
        if model == BACK:
            if fixed_provider:
                return None
            statuses = survey(paths)[1]
            default = name  # back where the user left
            continue
        try:
            endpoint, server = prepare_endpoint(
                name, model, api_base=base, api_key=key, paths=paths, hw=hw, fresh_server=fresh_server,
                context_window=context_window, max_tokens=max_tokens,
            )
        except OiLocalError as error:
            if started is not None:
                started.stop()
            _say(f"Error: {error}")
            continue
        return Picked(endpoint, server or started, LastChoice(name, model, base if name == "custom" else None))
