"""`oi-local serve MODEL`: start only the OpenAI-compatible server, print how to use it, stop it on Ctrl-C."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

from oi_local.endpoint import is_loopback
from oi_local.errors import OiLocalError
from oi_local.face.invocation import Invocation
from oi_local.machine.paths import AppPaths, app_paths
from oi_local.models.fit import Fit

MODEL_SUFFIXES = (".gguf", ".llamafile")


@dataclasses.dataclass
class ModelChoice:
    path: Path
    model_id: str
    format: str  # "gguf" | "llamafile"
    entry: object | None = None  # CatalogEntry when chosen from the catalog
    verified: bool | None = None  # the store's verdict (None: no published checksum)


def looks_like_path(text: str) -> bool:
    return text.endswith(MODEL_SUFFIXES) or "/" in text or "\\" in text or Path(text).expanduser().exists()


def resolve_model(text: str, paths: AppPaths) -> ModelChoice:
    """A path to a .gguf/.llamafile, or a catalog id fetched (or found) through the store."""
    if looks_like_path(text):
        path = Path(text).expanduser().resolve()
        if not path.exists():
            raise OiLocalError(f"The model file {path} does not exist. Give the path of a .gguf or .llamafile, "
                               "or a catalog id (oi-local models list --all).")
        fmt = "llamafile" if path.suffix == ".llamafile" else "gguf"
        return ModelChoice(path, path.stem, fmt)
    from oi_local.models import catalog
    from oi_local.models.store import ModelStore

    entries = catalog.load(paths.user_catalog)
    entry = catalog.find(entries, text)
    if entry is None:
        close = [e.id for e in entries if text.lower() in e.id.lower()][:5]
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise OiLocalError(f"No model {text!r} in the catalog and no such file.{hint} See `oi-local models list "
                           "--all`, or give the path of a .gguf or .llamafile.")
    stored = ModelStore(paths.models, entries).ensure(entry, progress=sys.stderr.isatty())
    return ModelChoice(stored.path, entry.id, entry.format, entry, stored.verified)


def fit_for(choice: ModelChoice, paths: AppPaths, *, context_window: int | None = None,
            n_gpu_layers: int | None = None) -> Fit:
    """The fit for this machine from the file's header; -c re-fits at that context, -ngl overrides the layers."""
    from oi_local.machine.hardware import probe
    from oi_local.models.fit import fit_file

    if context_window is not None and context_window < 256:
        raise OiLocalError(f"A context window of {context_window} tokens is too small; use at least 256.")
    fit = fit_file(choice.path, probe(paths.models), choice.entry, n_ctx=context_window)
    if n_gpu_layers is not None:
        fit = dataclasses.replace(fit, n_gpu_layers=n_gpu_layers)
    return fit


def examples(endpoint) -> tuple[str, str]:
    """Ready-to-paste curl and Python (openai client) examples for an endpoint."""
    body = json.dumps({"model": endpoint.model_id, "messages": [{"role": "user", "content": "Say hello."}]})
    curl = (
        f"curl {endpoint.api_base}/chat/completions \\\n"
        f"  -H 'Content-Type: application/json' \\\n"
        f"  -H 'Authorization: Bearer {endpoint.api_key}' \\\n"
        f"  -d '{body}'"
    )
    python = (
        "from openai import OpenAI\n\n"
        f'client = OpenAI(base_url="{endpoint.api_base}", api_key="{endpoint.api_key}")\n'
        "reply = client.chat.completions.create(\n"
        f'    model="{endpoint.model_id}",\n'
        '    messages=[{"role": "user", "content": "Say hello."}],\n'
        ")\n"
        "print(reply.choices[0].message.content)"
    )
    return curl, python


def start(choice: ModelChoice, fit: Fit, args: Invocation, paths: AppPaths):
    runner = args.runner or ("llamafile" if choice.format == "llamafile" else "llamacpp")
    common = dict(paths=paths, model_id=choice.model_id, port=args.port, host=args.host, api_key=args.api_key,
                  reuse=not args.fresh_server, progress=sys.stderr.isatty())
    if runner == "llamafile":
        from oi_local.serving.runners import llamafile

        # a file named on the command line is the user's own choice; a catalog llamafile must pass the store
        verified = choice.entry is None or choice.verified is not False
        return llamafile.start(choice.path, fit, verified=verified, **common)
    from oi_local.serving.runners import llamacpp

    return llamacpp.start(choice.path, fit, **common)


def print_endpoint(console, server, fit: Fit) -> None:
    from rich.panel import Panel
    from rich.table import Table

    ep = server.endpoint
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("api_base", ep.api_base)
    table.add_row("model", ep.model_id)
    table.add_row("api_key", ep.api_key or "")
    table.add_row("context", f"{ep.context_window} tokens (max_tokens {ep.max_tokens}, GPU layers {fit.n_gpu_layers})")
    table.add_row("server", f"{ep.provider}, pid {ep.pid}" + (" (reused: started by another run)" if server.reused else ""))
    table.add_row("log", str(ep.log_path))
    console.print(Panel(table, title="Server ready", expand=False))
    curl, python = examples(ep)
    # plain text, never wrapped or cut to the terminal width: it must paste as it is
    console.print("curl:", style="bold")
    console.print(curl, markup=False, highlight=False, soft_wrap=True)
    console.print("Python (pip install openai):", style="bold")
    console.print(python, markup=False, highlight=False, soft_wrap=True)


def run(args: Invocation) -> int:
    from rich.console import Console

    console = Console()
    err = Console(stderr=True)
    paths = app_paths().ensure()
    choice = resolve_model(args.model, paths)
    fit = fit_for(choice, paths, context_window=args.context_window, n_gpu_layers=args.n_gpu_layers)
    if not fit.fits:
        err.print(f"[yellow]Warning:[/yellow] this model may not fit this machine: {fit.reason}", markup=True)
    if not is_loopback(args.host):
        err.print(f"[yellow]Warning:[/yellow] listening on {args.host}: anyone who can reach this machine can use "
                  "the model (with the API key).")
    server = start(choice, fit, args, paths)
    try:
        if args.port and server.port != args.port:
            err.print(f"[yellow]Port {args.port} is taken; using port {server.port}.[/yellow]")
        print_endpoint(console, server, fit)
        console.print("[dim]Press Ctrl-C to stop the server.[/dim]" if not server.reused else
                      "[dim]This server belongs to the run that started it and stops with it; Ctrl-C leaves it running.[/dim]")
        while True:
            if server.process is not None:
                try:
                    server.process.wait(timeout=1.0)
                except subprocess.TimeoutExpired:  # still running
                    continue
            else:
                time.sleep(1.0)
            error = server.problem()
            if error is not None:
                raise error
    except KeyboardInterrupt:
        server.stop()
        err.print("Server stopped." if not server.reused else "Detached from the server.")
        return 0
    finally:
        server.stop()
