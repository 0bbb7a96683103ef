"""Magic commands of the interactive chat (`%help` lists them), as in Open Interpreter's terminal."""

from __future__ import annotations

import json
import math
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from oi_local.endpoint import is_local_url
from oi_local.errors import OiLocalError
from oi_local.files import format_bytes, write_atomic
from oi_local.terminal import export

HELP = """\
| Command | What it does |
|---|---|
| `%% <shell command>` | run the command in the system shell |
| `%verbose [true/false]` | verbose mode on (no argument or true) or off (false) |
| `%reset` | start the conversation over |
| `%undo` | remove your last message and the answer to it |
| `%save_message [path]` | save the messages as JSON (default messages.json) |
| `%load_message [path]` | load messages from JSON (default messages.json) |
| `%tokens [prompt]` | tokens the next request will send (and a prompt's), with the cost where one is known |
| `%info` | system and interpreter information |
| `%markdown [path]` | export the conversation as Markdown (default: Downloads folder) |
| `%jupyter [path]` | export the conversation as a Jupyter notebook (default: Downloads folder) |
| `%help` | this help |
"""


def is_magic(text: str) -> bool:
    return text.lstrip().startswith("%")


def handle(interpreter: Any, text: str, display: Any) -> None:
    """Run one magic command; problems are shown as errors, never raised."""
    text = text.strip()
    if text.startswith("%%"):
        name, argument = "%%", text[2:].strip()
    else:
        name, _, argument = text[1:].partition(" ")
        argument = argument.strip()
    command = COMMANDS.get(name)
    if command is None:
        display.error(f"Unknown command %{name}. Type %help for the list.")
        return
    try:
        command(interpreter, argument, display)
    except (OiLocalError, OSError, ValueError) as error:
        display.error(str(error))


def shell(interpreter: Any, argument: str, display: Any) -> None:
    if not argument:
        raise ValueError("Usage: %% <shell command>, for example `%% ls -la`.")
    chunks = interpreter.computer.run("shell", argument, stream=True, display=False)
    try:
        for chunk in chunks:
            if chunk.get("type") == "console" or "format" in chunk:
                display.chunk({"role": "computer", "type": "console", **chunk})
    except KeyboardInterrupt:
        interpreter.computer.stop()
        display.notice("Stopped (Ctrl-C).")
    finally:
        display.end_block()


def verbose(interpreter: Any, argument: str, display: Any) -> None:
    value = argument.lower()
    if value not in ("", "true", "false"):
        raise ValueError("Usage: %verbose [true/false].")
    interpreter.verbose = value != "false"
    computer = getattr(interpreter, "computer", None)
    if computer is not None and hasattr(computer, "verbose"):
        computer.verbose = interpreter.verbose
    display.notice("Entered verbose mode." if interpreter.verbose else "Exited verbose mode.")


def reset(interpreter: Any, argument: str, display: Any) -> None:
    interpreter.reset()
    display.notice("Reset done: the conversation starts over.")


def undo(interpreter: Any, argument: str, display: Any) -> None:
    messages = interpreter.messages
    last_user = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "user"), None)
    if last_user is None:
        display.notice("Nothing to undo.")
        return
    removed = messages[last_user:]
    interpreter.messages = messages[:last_user]
    display.notice(f"Removed {len(removed)} message(s), starting with your message: {str(removed[0].get('content'))[:80]!r}")


def save_message(interpreter: Any, argument: str, display: Any) -> None:
    path = Path(argument or "messages.json").expanduser()
    if path.suffix != ".json":
        path = path.with_name(path.name + ".json")
    write_atomic(path, json.dumps(interpreter.messages, indent=2, default=str) + "\n", mode=0o644)
    display.notice(f"Saved {len(interpreter.messages)} message(s) to {path}")


def load_message(interpreter: Any, argument: str, display: Any) -> None:
    path = Path(argument or "messages.json").expanduser()
    if path.suffix != ".json" and not path.exists():
        path = path.with_name(path.name + ".json")
    try:
        messages = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OiLocalError(f"There is no file {path}. Give the path of a file saved with %save_message.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise OiLocalError(f"{path} is not a messages file (not valid JSON: {error}). Nothing was loaded.") from None
    if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m and "type" in m for m in messages):
        raise OiLocalError(f"{path} is not a messages file: it must be a JSON list of messages, each with a role and a type. Nothing was loaded.")
    interpreter.messages = messages
    display.notice(f"Loaded {len(messages)} message(s) from {path}")


def is_local(api_base: str | None) -> bool:
    return is_local_url(api_base) or (urlparse(api_base or "").hostname or "").endswith(".local")


def _counter(interpreter: Any) -> Any:
    """The agent's token counter (the serving model's own tokenizer where the server offers it), if any."""
    return getattr(interpreter.llm, "token_counter", None)


def count_tokens(interpreter: Any, texts: list[str]) -> tuple[int, bool]:
    """(tokens, exact) for texts sent as messages: the agent's counter when it has one, else a conservative
    estimate of one token per three bytes plus a few tokens per message for the chat template."""
    counter = _counter(interpreter)
    if counter is not None:
        total = counter.count_messages([{"content": text} for text in texts])
        return total, bool(getattr(counter, "exact", False))
    return sum(math.ceil(len(text.encode("utf-8")) / 3) + 8 for text in texts), False


def _conversation_texts(interpreter: Any) -> list[str]:
    system = str(getattr(interpreter, "system_message", "") or "")
    if getattr(interpreter, "custom_instructions", None):
        system += "\n\n" + str(interpreter.custom_instructions)
    return [system] + [str(m.get("content", "")) for m in interpreter.messages if m.get("type") != "image"]


def _is_local_model(interpreter: Any) -> bool:
    llm = interpreter.llm
    local = getattr(llm, "is_local", None)
    if isinstance(local, bool):
        return local
    return is_local(getattr(llm, "api_base", None))


def _cost(interpreter: Any, tokens: int) -> str:
    if _is_local_model(interpreter):
        return "no cost (local model)"
    try:
        from oi_local.agent.llm import import_litellm

        prompt_cost, _ = import_litellm().cost_per_token(model=interpreter.llm.model, prompt_tokens=tokens, completion_tokens=0)
        return f"estimated cost ${prompt_cost:.6f}"
    except Exception:
        return "cost unknown for this model"


def tokens(interpreter: Any, argument: str, display: Any) -> None:
    count, exact = count_tokens(interpreter, _conversation_texts(interpreter))
    how = "" if exact else " (estimate)"
    lines = [f"Tokens sent with the next request: {count}{how}, {_cost(interpreter, count)}"]
    if argument:
        prompt_count, prompt_exact = count_tokens(interpreter, [argument])
        lines.append(f"Tokens in the prompt: {prompt_count}{'' if prompt_exact else ' (estimate)'}")
        lines.append(f"Total with the prompt: {count + prompt_count}, {_cost(interpreter, count + prompt_count)}")
    window = getattr(interpreter.llm, "context_window", None)
    if window:
        lines.append(f"Context window: {window}")
    display.notice("\n".join(lines))


def info(interpreter: Any, argument: str, display: Any) -> None:
    from oi_local import __version__

    llm = interpreter.llm
    computer = getattr(interpreter, "computer", None)
    languages = [getattr(lang, "name", str(lang)) for lang in getattr(computer, "languages", [])]
    rows = [
        ("oi_local", __version__),
        ("Python", f"{platform.python_version()} ({sys.executable})"),
        ("System", f"{platform.system()} {platform.release()} {platform.machine()}"),
    ]
    try:
        import psutil

        memory = psutil.virtual_memory()
        rows.append(("RAM", f"{format_bytes(memory.available)} free of {format_bytes(memory.total)}"))
    except ImportError:
        pass
    for name in ("model", "api_base", "context_window", "max_tokens", "temperature", "supports_functions", "supports_vision"):
        rows.append((f"llm.{name}", repr(getattr(llm, name, None))))
    for name in ("auto_run", "offline", "safe_mode", "loop", "verbose", "max_output", "conversation_history"):
        rows.append((name, repr(getattr(interpreter, name, None))))
    rows.append(("languages", ", ".join(languages) or "none"))
    rows.append(("messages", str(len(interpreter.messages))))
    display.notice("\n".join(f"{key:<22} {value}" for key, value in rows))


def _export(interpreter: Any, argument: str, display: Any, suffix: str, save: Callable[[list, Path], Any]) -> None:
    path = Path(argument).expanduser() if argument else export.default_path(suffix)
    if path.suffix != suffix:
        path = path.with_name(path.name + suffix)
    save(interpreter.messages, path)
    display.notice(f"Exported the conversation to {path}")


def markdown(interpreter: Any, argument: str, display: Any) -> None:
    _export(interpreter, argument, display, ".md", export.save_markdown)


def jupyter(interpreter: Any, argument: str, display: Any) -> None:
    _export(interpreter, argument, display, ".ipynb", export.save_notebook)


def show_help(interpreter: Any, argument: str, display: Any) -> None:
    display.markdown(HELP)


COMMANDS: dict[str, Callable[[Any, str, Any], None]] = {
    "%%": shell,
    "verbose": verbose,
    "reset": reset,
    "undo": undo,
    "save_message": save_message,
    "load_message": load_message,
    "tokens": tokens,
    "info": info,
    "markdown": markdown,
    "jupyter": jupyter,
    "help": show_help,
}
