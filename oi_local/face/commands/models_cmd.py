"""`oi-local models list|download|verify|delete|import` and the `interpreter --local_models` manager."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from oi_local.errors import OiLocalError, did_you_mean
from oi_local.face.invocation import Invocation
from oi_local.machine.paths import AppPaths, app_paths


def open_store(paths: AppPaths):
    from oi_local.models import catalog
    from oi_local.models.store import ModelStore

    return ModelStore(paths.models, catalog.load(paths.user_catalog))


# ---- without menus ---------------------------------------------------------------------------------------------


def run(args: Invocation) -> int:
    paths = app_paths()
    store = open_store(paths)
    as_json = getattr(args, "json", False)
    action = args.action
    if action == "list":
        return _list(store, paths, show_all=args.all, as_json=as_json)
    if action == "download":
        entry = _catalog_entry(store, args.model_id)
        model = store.ensure(entry, progress=not as_json)
        _emit(as_json, {"model": model.to_json()}, f"{model.id} is ready: {model.path}")
        return 0
    if action == "verify":
        if getattr(args, "trust", False):
            model = store.trust(args.model_id, progress=not as_json)
            _emit(as_json, {"model": model.to_json()}, _trust_line(model))
            return 0
        model = store.verify(args.model_id, progress=not as_json)
        _emit(as_json, {"model": model.to_json()}, _verdict_line(model))
        return 1 if model.verified is False else 0
    if action == "delete":
        model = store.get(args.model_id)
        if model is None:
            store.delete(args.model_id)  # raises the clear "no such model" error (or drops a partial download)
            _emit(as_json, {"deleted": args.model_id, "partial_download": True},
                  f"Removed the partial download of {args.model_id}.")
            return 0
        if not args.yes:
            if not sys.stdin.isatty():
                raise OiLocalError(f"Deleting {args.model_id} needs a confirmation; add --yes to delete without asking.")
            import questionary

            if not questionary.confirm(_delete_question(store, model), default=False).ask():
                print("Nothing deleted.")
                return 1
        removed_file = _removes_file(store, model)
        store.delete(args.model_id)
        _emit(as_json, {"deleted": args.model_id, "file_removed": removed_file, "path": str(model.path)},
              _deleted_line(model, removed_file))
        return 0
    if action == "import":
        model = store.import_file(Path(args.path), model_id=args.model_id, copy=args.copy,
                                  link=bool(getattr(args, "link", False)), progress=not as_json)
        _emit(as_json, {"model": model.to_json()}, f"Imported {model.id} ({model.name}): {model.path}")
        return 0
    raise OiLocalError(f"Unknown models action {action!r}; use list, download, verify, delete or import.")


def _list(store, paths: AppPaths, *, show_all: bool, as_json: bool) -> int:
    models = store.list()
    ranked = _ranked(store, paths) if show_all else None
    if as_json:
        data: dict = {"models_dir": str(store.models_dir), "models": [m.to_json() for m in models],
                      "partial_downloads": [{"id": e.id, "bytes": n, "size_bytes": e.size_bytes}
                                            for e, n in store.partials()]}
        if ranked is not None:
            on_disk = {m.id for m in models}
            data["catalog"] = [
                {"id": e.id, "name": e.name, "format": e.format, "size_bytes": e.size_bytes, "fits": f.fits,
                 "reason": f.reason, "n_ctx": f.n_ctx, "recommended": bool(e.recommended and f.fits), "tokens_per_second": f.tokens_per_second,
                 "on_disk": e.id in on_disk}
                for e, f in ranked
            ]
        print(json.dumps(data, indent=1))
        return 0
    from rich.console import Console

    console = Console()
    _print_models(console, models, store.models_dir)
    _print_partials(store, console)
    if ranked is not None:
        _print_catalog(console, ranked, {m.id for m in models})
    return 0


def _catalog_entry(store, model_id: str):
    from oi_local.models import catalog

    entry = catalog.find(store.catalog, model_id)
    if entry is None:
        hint = did_you_mean(model_id, (e.id for e in store.catalog))
        raise OiLocalError(f"{model_id!r} is not in the model catalog.{hint} `oi-local models list --all` shows "
                           "every catalog model and whether it fits this machine.")
    return entry


def _ranked(store, paths: AppPaths):
    from oi_local.machine import hardware
    from oi_local.models import fit

    return fit.rank(store.catalog, hardware.probe(paths.models))


def _emit(as_json: bool, data: dict, line: str) -> None:
    print(json.dumps(data, indent=1) if as_json else line)


# ---- shared wording -------------------------------------------------------------------------------------------


def _size(n: int | None) -> str:
    from oi_local.files import format_bytes

    return format_bytes(n)


def _verified_text(model) -> str:
    if not model.path.exists():
        return "missing"
    return {True: "verified", False: "MISMATCH", None: "no checksum"}[model.verified]


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp)) if timestamp else "never"


def _verdict_line(model) -> str:
    if model.verified is True:
        return f"{model.id}: sha256 matches ({model.sha256})."
    if model.verified is None:
        return f"{model.id}: unchanged since it was added (no published checksum to compare with)."
    return (f"{model.id}: the file does NOT match its sha256; do not use it. Delete it with "
            f"`oi-local models delete {model.id}` and download it again.")


def _trust_line(model) -> str:
    whose = "the catalog's" if model.sha256_source == "catalog" else "pinned by you"
    runs = " It may now be run." if model.format == "llamafile" else ""
    return (f"{model.id}: sha256 {model.sha256} ({whose}) is recorded as trusted for {model.path}.{runs} "
            "Compare it with the publisher's sha256 if you have it.")


def _removes_file(store, model) -> bool:
    return store.deletes_file(model.id)


def _delete_question(store, model) -> str:
    if _removes_file(store, model):
        return f"Delete {model.id} and its file {model.path} ({_size(model.size_bytes)})?"
    return f"Unregister {model.id}? Its file {model.path} is outside the models folder and is kept."


def _deleted_line(model, removed_file: bool) -> str:
    return f"Deleted {model.id} ({model.path})." if removed_file else f"Unregistered {model.id}; kept {model.path}."


WIDE = 120  # below this many columns, tables drop the widest columns (paths are printed under them)


def _print_models(console, models, models_dir: Path) -> None:
    from rich.table import Table

    wide = console.width >= WIDE
    table = Table(title=f"Models in {models_dir}", title_justify="left")
    table.add_column("id", no_wrap=True)
    table.add_column("name")
    for column in ("format", "size", "verified", "last used"):
        table.add_column(column, no_wrap=True)
    if wide:
        table.add_column("path", overflow="fold")
    for m in models:
        cells = [m.id, m.name, m.format, _size(m.size_bytes), _verified_text(m), _when(m.last_used)]
        table.add_row(*cells, *([str(m.path)] if wide else []))
    if not models:
        table.add_row("(none)", *[""] * (6 if wide else 5))
    console.print(table)
    if not wide:
        for m in models:
            console.print(f"  {m.id}: {m.path}", soft_wrap=True, highlight=False)


def _print_partials(store, console) -> None:
    for entry, have in store.partials():
        console.print(f"Unfinished download: {entry.id} ({_size(have)} of {_size(entry.size_bytes)}); "
                      f"`oi-local models download {entry.id}` resumes it, `oi-local models delete {entry.id}` "
                      "removes it.", soft_wrap=True)


def _print_catalog(console, ranked, on_disk: set[str]) -> None:
    from rich.table import Table

    wide = console.width >= WIDE
    table = Table(title="Catalog (fitting models first; ★ recommended)", title_justify="left")
    table.add_column("id", no_wrap=True)
    table.add_column("size", no_wrap=True)
    table.add_column("fits", no_wrap=True)
    if wide:
        table.add_column("context", no_wrap=True)
        table.add_column("on disk", no_wrap=True)
    table.add_column("why", overflow="fold", ratio=1)
    for entry, fit in ranked:
        fits = ("★ yes" if entry.recommended else "yes") if fit.fits else "no"
        if not wide and entry.id in on_disk:
            fits += " (on disk)"
        extra = [str(fit.n_ctx) if fit.fits else "", "yes" if entry.id in on_disk else ""] if wide else []
        table.add_row(entry.id, _size(entry.size_bytes), fits, *extra, fit.reason + fit.speed_suffix, style=None if fit.fits else "dim")
    console.print(table)


# ---- interactive: interpreter --local_models ------------------------------------------------------------------

MENU = (
    ("list", "List the models on disk"),
    ("download", "Download a model from the catalog"),
    ("verify", "Verify a model (sha256)"),
    ("delete", "Delete a model"),
    ("import", "Import a .gguf or .llamafile file"),
    ("folder", "Show the models folder"),
    ("exit", "Exit"),
)


def interactive(args: Invocation) -> int:
    """A menu over the store; Escape goes back (or leaves at the top), Ctrl-C leaves."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise OiLocalError("`interpreter --local_models` is an interactive menu and needs a terminal. In scripts use "
                           "`oi-local models list|download|verify|delete|import ... --json`.")
    import questionary
    from rich.console import Console

    paths = app_paths()
    store = open_store(paths)
    console = Console()
    console.print(f"[bold]Models folder:[/bold] {store.models_dir}", soft_wrap=True)
    actions = {"list": _i_list, "download": _i_download, "verify": _i_verify, "delete": _i_delete,
               "import": _i_import, "folder": _i_folder}
    while True:
        choice = _ask(questionary.select(
            "What do you want to do? (Esc or Ctrl-C to leave)",
            choices=[questionary.Choice(title, value=key) for key, title in MENU]))
        if choice in (None, "exit"):
            return 0
        try:
            actions[choice](store, paths, console)
        except OiLocalError as error:
            console.print(f"[red]Error:[/red] {error}")
        except KeyboardInterrupt:
            console.print("Cancelled.")


def _ask(question):
    """Ask; None when the user presses Escape or Ctrl-C."""
    from oi_local.face.menus import escape_answers

    escape_answers(question, None)
    try:
        return question.unsafe_ask()
    except (KeyboardInterrupt, EOFError):
        return None


def _pick_model(store, verb: str):
    import questionary

    models = store.list()
    if not models:
        print("There are no models yet: download one from the catalog or import a file.")
        return None
    choices = [questionary.Choice(f"{m.id}  ({_size(m.size_bytes)}, {_verified_text(m)})", value=m.id)
               for m in models]
    choices.append(questionary.Choice("Back", value=None))
    model_id = _ask(questionary.select(f"Which model do you want to {verb}?", choices=choices))
    return store.get(model_id) if model_id else None


def _i_list(store, paths, console) -> None:
    _print_models(console, store.list(), store.models_dir)
    _print_partials(store, console)


def _i_download(store, paths, console) -> None:
    import questionary

    console.print("Checking what fits this machine ...")
    ranked = _ranked(store, paths)
    on_disk = {m.id for m in store.list()}
    partial = {e.id: n for e, n in store.partials()}
    choices = []
    for entry, fit in ranked:
        mark = " (on disk)" if entry.id in on_disk else (
            f" (resumes at {_size(partial[entry.id])})" if entry.id in partial else "")
        title = f"{entry.name}  {_size(entry.size_bytes)}, {entry.format}{mark}"
        if fit.fits:
            star = "★ " if entry.recommended else "  "
            choices.append(questionary.Choice(f"{star}{title}  context {fit.n_ctx}{fit.speed_suffix}", value=entry.id))
        else:
            choices.append(questionary.Choice(f"  {title}", value=entry.id, disabled=f"does not fit: {fit.reason}"))
    choices.append(questionary.Choice("Back", value=None))
    model_id = _ask(questionary.select("Download which model? (★ recommended for this machine)", choices=choices))
    if not model_id:
        return
    entry = _catalog_entry(store, model_id)
    model = store.ensure(entry, progress=True)
    console.print(f"[green]{model.id} is ready:[/green] {model.path}", soft_wrap=True)


def _i_verify(store, paths, console) -> None:
    model = _pick_model(store, "verify")
    if model is not None:
        console.print(_verdict_line(store.verify(model.id, progress=True)))


def _i_delete(store, paths, console) -> None:
    import questionary

    model = _pick_model(store, "delete")
    if model is None:
        return
    if not _ask(questionary.confirm(_delete_question(store, model), default=False)):
        console.print("Nothing deleted.")
        return
    removed_file = _removes_file(store, model)
    store.delete(model.id)
    console.print(_deleted_line(model, removed_file))


def _i_import(store, paths, console) -> None:
    import questionary

    raw = _ask(questionary.path("Path of the .gguf or .llamafile to import:"))
    if not raw:
        return
    copy = _ask(questionary.confirm("Copy it into the models folder? (No: use it where it is)", default=False))
    if copy is None:
        return
    model = store.import_file(Path(raw.strip()), copy=bool(copy))
    console.print(f"[green]Imported {model.id}[/green] ({model.name}, {_verified_text(model)}): {model.path}", soft_wrap=True)


def _i_folder(store, paths, console) -> None:
    store.models_dir.mkdir(parents=True, exist_ok=True)
    console.print(f"Models folder: {store.models_dir}", soft_wrap=True)
    from oi_local.face.folders import open_folder

    open_folder(store.models_dir)
