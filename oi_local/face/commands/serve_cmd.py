"""`oi-local serve MODEL`: start only the OpenAI-compatible server, print how to use it, stop it on Ctrl-C."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from oi_local import providers
from oi_local.endpoint import is_loopback
from oi_local.errors import OiLocalError
from oi_local.face.invocation import Invocation
from oi_local.machine.paths import AppPaths, app_paths
from oi_local.models.fit import Fit
from oi_local.providers import builtin
from oi_local.providers.base import ProviderContext, ServeOptions


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


def serve_context(args: Invocation, paths: AppPaths) -> ProviderContext:
    """The flags as the built-in providers take them."""
    return ProviderContext(
        paths=paths, fresh_server=bool(args.fresh_server), progress=sys.stderr.isatty(),
        context_window=args.context_window, verify=bool(getattr(args, "verify", False)),
        serve=ServeOptions(host=args.host, port=args.port, api_key=args.api_key, n_gpu_layers=args.n_gpu_layers),
    )


def provider_for(resolved, runner: str | None):
    """--runner when given (a built-in provider's name), else the built-in provider for the model's format."""
    if runner is None:
        return providers.serving(resolved.format)
    chosen = providers.get(runner)
    if not chosen.builtin:
        built_in = ", ".join(p.name for p in providers.all_providers() if p.builtin)
        raise OiLocalError(f"`oi-local serve --runner` takes a built-in provider ({built_in}), not {runner}.")
    return chosen


def run(args: Invocation) -> int:
    from rich.console import Console

    console = Console()
    err = Console(stderr=True)
    ctx = serve_context(args, app_paths().ensure())
    resolved = builtin.resolve(args.model, ctx)  # a .gguf or a .llamafile, whichever it is
    provider = provider_for(resolved, args.runner)
    fit = provider.fit(resolved, ctx)
    if fit.note:  # e.g. a GPU the installed llama.cpp build cannot use (machine/summary.gpu_build_note)
        err.print(fit.note, style="yellow", markup=False, highlight=False)
    if not fit.fits:
        err.print(f"[yellow]Warning:[/yellow] this model may not fit this machine: {fit.reason}", markup=True)
    if not is_loopback(args.host):
        err.print(f"[yellow]Warning:[/yellow] listening on {args.host}: anyone who can reach this machine can use "
                  "the model (with the API key).")
    server = provider.serve(resolved, fit, ctx)
    try:
        if args.port and server.port != args.port:
            err.print(f"[yellow]Port {args.port} is taken; using port {server.port}.[/yellow]")
        print_endpoint(console, server, fit)
        console.print("[dim]Press Ctrl-C to stop the server.[/dim]" if not server.reused else
                      "[dim]Another run started this server and shares it; Ctrl-C leaves it to them (or stops it "
                      "when this is its last user).[/dim]")
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
        stopped = server.stop()
        err.print("Server stopped." if stopped else "Detached from the server: another run still uses it.")
        return 0
    finally:
        server.stop()
