"""The local explorer: the questionary menus of `interpreter --local`, on top of the providers.

The only module of local mode that asks questions. It asks each provider what it is (built in, needs a URL,
asks for a key, can start its server) and never names one. Escape goes back one level; Ctrl-C leaves cleanly.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any

from oi_local import providers
from oi_local.env import TIMEOUTS
from oi_local.errors import OiLocalError
from oi_local.face.last_choice import LastChoice
from oi_local.face.menus import BACK, Cancelled, ask, say, select, text, valid_file
from oi_local.providers.base import Provider, ProviderContext, ProviderStatus

__all__ = ["BACK", "Cancelled", "Picked", "explore", "preselect", "provider_lines", "survey"]

TRY_AGAIN = "__oi_retry__"
START_SERVER = "__oi_start_server__"
DOWNLOAD = "__oi_download__"
IMPORT = "__oi_import__"
TYPE_ID = "__oi_type_id__"
OTHER_URL = "__oi_other_url__"


@dataclass
class Picked:
    endpoint: Any  # Endpoint
    server: Any  # ManagedServer / ManagedChild / None
    choice: LastChoice


# --- first screen: hardware and providers ----------------------------------------------------------------


def survey(ctx: ProviderContext) -> tuple[Any, dict[str, ProviderStatus]]:
    """Probe the hardware and every provider at once (threads; each probe is loopback-only and short).

    Each provider is probed at its default address: the first menu shows what runs where it usually runs."""
    from oi_local.machine import hardware

    probe_ctx = ProviderContext(paths=ctx.paths)

    def detect(name: str) -> ProviderStatus:
        try:
            return providers.get(name).detect(probe_ctx)
        except Exception as error:  # a broken probe must not hide the other providers
            return ProviderStatus(False, False, f"could not check ({type(error).__name__}: {error})")

    results: dict[str, object] = {}

    def work(key: str, fn, *args) -> None:
        try:
            results[key] = fn(*args)
        except Exception:
            results[key] = None

    threads = [threading.Thread(target=work, args=("hw", hardware.probe, ctx.paths.models), daemon=True)]
    threads += [threading.Thread(target=work, args=(name, detect, name), daemon=True) for name in providers.names()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = {
        name: results.get(name) or ProviderStatus(False, False, "could not check") for name in providers.names()
    }
    return results.get("hw"), statuses


def preselect(statuses: dict[str, ProviderStatus], last: LastChoice | None) -> str:
    """Last time's provider; else the first running app the user started on purpose; else the default."""
    if last is not None and last.provider in statuses:
        return last.provider
    for provider in providers.all_providers():
        if not provider.builtin and not provider.needs_url and statuses[provider.name].running:
            return provider.name
    return providers.DEFAULT


def provider_lines(statuses: dict[str, ProviderStatus]) -> list[tuple[str, str]]:
    """(name, menu line) for every provider, in menu order."""
    lines = []
    for provider in providers.all_providers():
        status = statuses[provider.name]
        mark = "●" if status.running else ("○" if status.installed else "·")
        lines.append((provider.name, f"{mark} {provider.title:<30} {status.detail}"))
    return lines


def provider_menu(statuses: dict[str, ProviderStatus], default: str) -> str:
    import questionary

    choices = [questionary.Choice(line, value=name) for name, line in provider_lines(statuses)]
    return select("Choose a provider:", choices, default=default)


# --- model menus ---------------------------------------------------------------------------------------------


def _not_running(status: ProviderStatus, provider: Provider | None = None, *, other_url: bool = False) -> str:
    """Say why the provider is not usable and what to do: TRY_AGAIN, START_SERVER (when `provider` can start
    it), OTHER_URL (when asked for) or BACK."""
    import questionary

    say("")
    say(status.guidance or status.detail)
    say("")
    choices = []
    if provider is not None:
        choices.append(questionary.Choice(f"Start `{provider.start_command}` now (stopped when you exit)", value=START_SERVER))
    choices.append(questionary.Choice("Try again", value=TRY_AGAIN))
    if other_url:
        choices.append(questionary.Choice("Type another URL…", value=OTHER_URL))
    choices.append(questionary.Choice("Back", value=BACK))
    return select("What now?", choices, default=choices[0].value)


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
    return select(title, choices, default=default if default in enabled else (enabled[0] if enabled else None))


def _menu_title(provider: Provider) -> str:
    return f"{provider.title}: choose a model" + (f" ({provider.menu_hint})" if provider.menu_hint else "")


def _last_model(provider: Provider, last: LastChoice | None) -> str | None:
    return last.model if last is not None and last.provider == provider.name else None


def _builtin_model(provider, ctx: ProviderContext, last: LastChoice | None) -> str:
    """A model this program serves: a catalog id, a stored id or a path; BACK."""
    import questionary

    ctx = dataclasses.replace(ctx, catalog=tuple(provider.catalog(ctx)))
    while True:
        models = provider.list_models(ctx)
        extra = [questionary.Choice("Download…", value=DOWNLOAD), questionary.Choice("Import a file…", value=IMPORT)]
        picked = _model_menu(models, title=_menu_title(provider), extra=extra, default=_last_model(provider, last))
        if picked == DOWNLOAD:
            pool = [c for c in models if not c.on_disk]
            choices = [questionary.Choice(c.label + ("" if c.fits else "  [may not fit]"), value=c.id) for c in pool]
            if not choices:
                say("Every catalog model of this kind is already on disk.")
                continue
            chosen = select("Download which model?", [*choices, questionary.Choice("Back", value=BACK)])
            if chosen == BACK:
                continue
            return chosen
        if picked == IMPORT:
            suffix = provider.suffix
            path = ask(questionary.path(f"Path to a {suffix} file:", validate=lambda p, s=suffix: valid_file(p, s)))
            if path == BACK:
                continue
            try:
                return provider.import_file(path, ctx)
            except OiLocalError as error:
                say(f"Error: {error}")
                continue
        return picked


def _ask_url(provider: Provider, offered: str | None) -> str:
    """The server's address, typed fresh; `offered` (last time's) is taken on Enter, never pre-filled."""

    def check(typed: str) -> bool | str:
        try:
            provider.check_url(typed)
        except OiLocalError as error:
            return str(error).split(". ")[0]
        return True

    answer = text("Server URL (OpenAI-compatible):", validate=check, offered=offered, example="http://127.0.0.1:8080/v1")
    return answer if answer == BACK else provider.check_url(answer)


def _server_model(provider: Provider, ctx: ProviderContext, last: LastChoice | None) -> tuple[str, ProviderContext, Any] | str:
    """A model served by another program: (model id, ctx with the address and key used, the server started
    here or None), or BACK."""
    import questionary

    if provider.needs_url and not ctx.api_base:
        url = _ask_url(provider, last.api_base if last is not None and last.provider == provider.name else None)
        if url == BACK:
            return BACK
        ctx = dataclasses.replace(ctx, api_base=url)
    started = None

    def back() -> str:
        if started is not None:
            started.stop()
        return BACK

    while True:
        status = provider.detect(dataclasses.replace(ctx, timeout=TIMEOUTS.provider_check))
        if not status.running:
            can_start = provider.can_start and status.installed and started is None
            what = _not_running(status, provider if can_start else None, other_url=provider.needs_url)
            if what == BACK:
                return back()
            if what == OTHER_URL:
                url = _ask_url(provider, None)
                ctx = ctx if url == BACK else dataclasses.replace(ctx, api_base=url)
            if what == START_SERVER:
                try:
                    started = provider.start_server(ctx)
                except OiLocalError as error:
                    say(f"Error: {error}")
            continue
        if provider.key_refused(ctx):
            hint = f" (or set {provider.key_env})" if provider.key_env else ""
            key = ask(questionary.password(f"{provider.title} asks for an API key{hint}:"))
            if key == BACK:
                return back()
            ctx = dataclasses.replace(ctx, api_key=key.strip() or None)
            continue
        try:
            models = provider.list_models(ctx)
        except OiLocalError as error:
            if _not_running(ProviderStatus(False, True, "", f"Error: {error}")) == BACK:
                return back()
            continue
        if not models and not provider.needs_url:
            say(f"{provider.title} answers but offers no model yet: load or start one in {provider.title}, then try again.")
        extra = [questionary.Choice("Type a model id…", value=TYPE_ID)] if provider.needs_url or not models else []
        picked = _model_menu(models, title=_menu_title(provider), extra=extra, default=_last_model(provider, last),
                             have=provider.listed_as)
        if picked == TYPE_ID:
            typed = ask(questionary.text("Model id:", validate=lambda t: bool(t.strip()) or "Type the model's id"))
            if typed == BACK:
                continue
            picked = typed.strip()
        if picked == BACK:
            return back()
        return picked, ctx, started


# --- the whole flow -------------------------------------------------------------------------------------------


def explore(ctx: ProviderContext, *, last: LastChoice | None = None, provider: str | None = None) -> Picked | None:
    """Menus until a model is served; None when the user leaves. Raises Cancelled on Ctrl-C.

    `ctx` carries the paths and what the flags gave (api_base, api_key, fresh_server, limits); `provider`
    skips the first menu."""
    from oi_local.face.local_mode import prepare_endpoint
    from oi_local.machine.summary import hardware_line

    ctx = dataclasses.replace(ctx, start_server=False)  # the menus offer to start a server; never unasked
    hw, statuses = survey(ctx)
    say(hardware_line(hw))
    ctx = dataclasses.replace(ctx, hw=hw)
    default = preselect(statuses, last)
    while True:
        name = provider or provider_menu(statuses, default)
        if name == BACK:
            return None
        chosen = providers.get(name)
        started, used = None, ctx
        if chosen.builtin:
            model = _builtin_model(chosen, ctx, last)
        else:
            result = _server_model(chosen, ctx, last)
            model, used, started = result if result != BACK else (BACK, ctx, None)
        if model == BACK:
            if provider:
                return None
            statuses = survey(ctx)[1]
            default = name  # back where the user left
            continue
        try:
            endpoint, server = prepare_endpoint(name, model, used)
        except OiLocalError as error:
            if started is not None:
                started.stop()
            say(f"Error: {error}")
            continue
        return Picked(endpoint, server or started, LastChoice(name, model, used.api_base if chosen.needs_url else None))
