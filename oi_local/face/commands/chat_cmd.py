"""`interpreter` without --local: build the agent from a profile and the flags, then chat (or run one task)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from oi_local.errors import OiLocalError
from oi_local.face import profiles
from oi_local.face.invocation import Invocation
from oi_local.machine.paths import AppPaths, app_paths


def run(invocation: Invocation) -> int:
    paths = app_paths()
    if invocation.options.get("profiles"):
        return show_profiles(paths)
    interpreter, profile = build_interpreter(invocation, paths)
    check_endpoint(interpreter, profile)
    return start_chat(interpreter, invocation)


def check_endpoint(interpreter: Any, profile: dict[str, Any]) -> None:
    """Offline, a model needs a server to talk to: say how to get one instead of failing at the first turn."""
    llm = interpreter.llm
    needs_no_base = str(llm.model or "").startswith(("ollama/", "ollama_chat/")) or _custom_completions(llm)
    if llm.model and (llm.api_base or needs_no_base or not getattr(interpreter, "offline", False)):
        return
    raise OiLocalError(
        f"No server is configured for the model ({llm.model or 'none'}), and this profile is offline. "
        "Run `interpreter --local` to pick a model that runs on this machine and start it, or give an "
        "OpenAI-compatible server with `--model openai/<id> --api_base http://127.0.0.1:PORT/v1`, "
        f"or set llm.model and llm.api_base in your profile ({profile.get(profiles.FILE_KEY)})."
    )


def _custom_completions(llm: Any) -> bool:
    """True when a profile replaced llm.completions (the documented hook for custom models)."""
    from oi_local.agent import llm as agent_llm

    default = getattr(agent_llm, "litellm_completions", None)
    return default is not None and getattr(llm, "completions", default) is not default


def build_interpreter(
    invocation: Invocation, paths: AppPaths, *, default_profile: str = profiles.DEFAULT_PROFILE, interpreter: Any = None,
    skip: Collection[str] = (),
) -> tuple[Any, dict[str, Any]]:
    """An OpenInterpreter with the profile (-p, else `default_profile`) applied, then the flags (flags win;
    `skip`: settings given on the command line that are not for the agent), then the terminal settings.

    Pass `interpreter` to apply all of it to an existing one (local_cmd: after configure_for(endpoint))."""
    if interpreter is None:
        from oi_local import OpenInterpreter  # with the terminal as its display (Python profiles may chat)

        interpreter = OpenInterpreter()
    profile = profiles.load_profile(invocation.options.get("profile") or default_profile, paths)
    profiles.apply(interpreter, profile)
    profiles.apply_flags(interpreter, invocation, skip=skip)
    for name, value in profiles.terminal_settings(profile, invocation).items():
        setattr(interpreter, name, value)  # the chat below and chat(display=True) from a profile or hook read them
    return interpreter, profile


def start_chat(interpreter: Any, invocation: Invocation) -> int:
    """Chat with an interpreter that is ready to use: resume a saved conversation (--conversations),
    run one task (MESSAGE) and exit, or run the interactive loop (plain and multi_line: the interpreter's)."""
    from oi_local import terminal

    plain = bool(interpreter.plain)
    if invocation.options.get("conversations"):
        if not pick_conversation(interpreter):
            return 0
    # The Python kernel starts in the background while the model writes its first reply.
    interpreter.computer.warm_up("python")
    message = invocation.options.get("message")
    if message:
        terminal.render(interpreter, message, plain=plain)
        return 0
    return terminal.chat_loop(interpreter, plain=plain, multi_line=bool(interpreter.multi_line))


def conversations_folder(interpreter: Any) -> Any:
    from pathlib import Path

    folder = getattr(interpreter, "conversation_history_path", None)
    return Path(folder) if folder else app_paths().conversations


def pick_conversation(interpreter: Any) -> bool:
    """Let the user pick a saved conversation (questionary) and load it into the interpreter.
    False when there is none or the user cancelled."""
    from oi_local.agent import conversations

    folder = conversations_folder(interpreter)
    saved = conversations.list_saved(folder)
    if not saved:
        print(f"No saved conversations in {folder}. Start one with `interpreter`; it is saved after every turn.")
        return False
    import questionary

    choices = [questionary.Choice(title=_conversation_title(item), value=item) for item in saved]
    picked = questionary.select("Resume which conversation?", choices=choices).ask()
    if picked is None:
        return False
    interpreter.messages = conversations.load(picked.path)
    interpreter.conversation_filename = picked.path.name
    print(f"Resumed {picked.path.name} ({len(interpreter.messages)} messages).")
    return True


def _conversation_title(item: Any) -> str:
    import datetime as dt

    title = getattr(item, "title", None) or item.path.name
    modified = getattr(item, "modified", None)
    when = dt.datetime.fromtimestamp(modified).strftime("%Y-%m-%d %H:%M") if modified else ""
    count = getattr(item, "message_count", None)
    return f"{title}  ({when}{f', {count} messages' if count is not None else ''})"


def show_profiles(paths: AppPaths) -> int:
    """Print the profiles folder and what is in it, and open it in the file manager where there is one."""
    profiles.install_shipped(paths)
    print(f"Profiles folder: {paths.profiles}")
    for name in profiles.available(paths):
        print(f"  {name}")
    print("Use one with `interpreter --profile NAME`; default.yaml is used when no --profile is given.")
    from oi_local.face.folders import open_folder

    open_folder(paths.profiles)
    return 0
