"""`interpreter --local [--provider P --model M --api_base U --api_key K -y] [MESSAGE]`.

With enough flags no question is asked; otherwise the explorer's menus (which need a terminal). Then one
summary line, the approval notice, and the chat (or the one task in MESSAGE). A server started here is
stopped when this command ends.
"""

from __future__ import annotations

import sys
from typing import Any

from oi_local import env, providers
from oi_local.endpoint import needs_litellm
from oi_local.errors import OiLocalError
from oi_local.face.invocation import Invocation
from oi_local.machine.paths import AppPaths, app_paths
from oi_local.providers.base import ProviderContext

# Settings that name the endpoint: they configure the server, never the agent's litellm settings directly.
ENDPOINT_SETTINGS = ("llm.model", "llm.api_base", "llm.api_key")


def missing_flags(args: Invocation) -> list[str]:
    missing = []
    if not args.provider:
        missing.append(f"--provider {{{','.join(providers.names())}}}")
    if not args.model:
        missing.append("--model ID|PATH")
    if args.provider and providers.get(args.provider).needs_url and not args.api_base:
        missing.append("--api_base URL")
    return missing


def provider_context(args: Invocation, paths: AppPaths) -> ProviderContext:
    """What the flags say about the endpoint, for the providers."""
    return ProviderContext(
        paths=paths, api_base=args.api_base, api_key=args.api_key, fresh_server=bool(args.fresh_server),
        context_window=args.context_window, max_tokens=args.max_tokens, start_server=True,
        offline=offline_requested(args, paths),
    )


def offline_requested(args: Invocation, paths: AppPaths) -> bool:
    """--offline, or `offline: true` in the profile named with -p. (The shipped local profile's `offline: true`
    is the agent's setting once the model is on disk; with it alone a missing model may still be downloaded.)"""
    if getattr(args, "offline", None):
        return True
    name = getattr(args, "profile", None)
    if not name:
        return False
    from oi_local.face import profiles

    try:
        return profiles.load_profile(name, paths).get("offline") is True
    except OiLocalError:
        return False  # the profile's own error is reported when it is applied


def has_terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def run(args: Invocation) -> int:
    env.apply_offline()
    paths = app_paths().ensure()
    missing = missing_flags(args)
    if missing and not has_terminal():
        raise OiLocalError(
            "`interpreter --local` needs a terminal for its menus, and without one these flags are missing: "
            f"{', '.join(missing)}. For example: interpreter --local --provider {providers.DEFAULT} --model smollm2-135m "
            '-y "your task".'
        )
    server = None
    context = provider_context(args, paths)
    if context.offline:
        env.set_hub_offline()  # before anything can reach the hub (the explorer's menus included)
    try:
        if not missing:
            from oi_local.face.local_mode import prepare_endpoint

            # the model is known: the kernel and the imports start beside the server
            warm = warm_up(needs_litellm(args.provider, args.api_base))
            endpoint, server = prepare_endpoint(args.provider, args.model, context)
            remember(paths, args.provider, args.model, args.api_base)
        else:
            picked = _explore(args, context)
            if picked is None:
                return 0
            endpoint, server = picked.endpoint, picked.server
            remember(paths, picked.choice.provider, picked.choice.model, picked.choice.api_base)
            warm = warm_up(needs_litellm(picked.choice.provider, picked.choice.api_base))
        interpreter = build_interpreter(endpoint, args, paths, computer=warm.computer)
        warm.attach(interpreter)
        from oi_local.face.local_mode import attach_recovery

        attach_recovery(interpreter, server)
        announce(endpoint, auto_run=bool(getattr(interpreter, "auto_run", False)))
        from oi_local.face.commands import chat_cmd

        return chat_cmd.start_chat(interpreter, args)
    finally:
        if server is not None:
            server.stop()


def _explore(args: Invocation, context: ProviderContext):
    from oi_local.face import explorer, last_choice

    try:
        return explorer.explore(context, last=last_choice.load(context.paths.config), provider=args.provider)
    except explorer.Cancelled:
        print("Cancelled.", file=sys.stderr)
        return None


def remember(paths: AppPaths, provider: str, model: str | None, api_base: str | None) -> None:
    from oi_local.face import last_choice

    kept_url = api_base if providers.get(provider).needs_url else None
    last_choice.save(paths.config, last_choice.LastChoice(provider, model, kept_url))


def warm_up(llm_client: bool):
    """The Python kernel and the terminal's rich modules (and litellm when the endpoint needs it), started in the
    background at once."""
    from oi_local.agent import warmup
    from oi_local.terminal.display import WARM_IMPORTS

    return warmup.begin(modules=WARM_IMPORTS, llm_client=llm_client)


def build_interpreter(endpoint, invocation: Invocation, paths: AppPaths, computer: Any = None) -> Any:
    """The agent pointed at the endpoint with the local defaults, then the local profile, then the flags."""
    from oi_local import OpenInterpreter  # with the terminal as its display
    from oi_local.face.commands import chat_cmd

    interpreter = OpenInterpreter(computer=computer)
    interpreter.configure_for(endpoint)
    interpreter, _profile = chat_cmd.build_interpreter(
        invocation, paths, default_profile="local", interpreter=interpreter, skip=ENDPOINT_SETTINGS
    )
    return interpreter


def announce(endpoint, *, auto_run: bool) -> None:
    from oi_local.face.local_mode import APPROVAL_NOTICE, AUTO_RUN_NOTICE, summary_line

    print(summary_line(endpoint), flush=True)
    print("", flush=True)
    print(AUTO_RUN_NOTICE if auto_run else APPROVAL_NOTICE, flush=True)
    print("", flush=True)
