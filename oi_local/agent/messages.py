"""LMC messages: normalising what a caller hands to chat(), and turning the conversation into the plain
OpenAI-style messages a text-only model reads (code as markdown fences, output through the templates)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oi_local.agent.templates import CODE_OUTPUT_TEMPLATE, EMPTY_CODE_OUTPUT_TEMPLATE
from oi_local.errors import OiLocalError

ROLES = ("user", "assistant", "computer")


@dataclass(frozen=True)
class Templates:
    """The message templates of the seed (`{content}` is replaced by the text)."""

    user_message_template: str = "{content}"
    always_apply_user_message_template: bool = False
    code_output_template: str = CODE_OUTPUT_TEMPLATE
    empty_code_output_template: str = EMPTY_CODE_OUTPUT_TEMPLATE
    code_output_sender: str = "user"
    max_output: int = 2800
    supports_vision: bool = False


def fill(template: str, content: str) -> str:
    """`{content}` replaced by content; other braces in either are left alone (no str.format surprises)."""
    return template.replace("{content}", content) if "{content}" in template else template


def truncate_output(text: str, max_output: int) -> str:
    """The end of a long output (where errors and results usually are), saying how much was cut."""
    if max_output is None or max_output <= 0 or len(text) <= max_output:
        return text
    return f"Output truncated. Showing the last {max_output} characters.\n\n" + text[-max_output:]


def _legacy(message: dict) -> list[dict]:
    """The seed's older shapes: {"role", "message"} and {"role", "language", "code", "output"}."""
    role = message.get("role", "user")
    out: list[dict] = []
    if "message" in message:
        out.append({"role": role, "type": "message", "content": str(message["message"])})
    if "code" in message:
        out.append({"role": "assistant", "type": "code", "format": message.get("language", "python"), "content": message["code"]})
        if message.get("output") is not None:
            out.append({"role": "computer", "type": "console", "format": "output", "content": str(message["output"])})
    return out


def normalize(message: Any) -> list[dict]:
    """What chat() accepts (a string, one LMC dict, a list of them, or the seed's older shapes) as LMC dicts."""
    if isinstance(message, str):
        return [{"role": "user", "type": "message", "content": message}]
    if isinstance(message, dict):
        if "type" not in message and ("message" in message or "code" in message):
            return _legacy(message)
        role = message.get("role", "user")
        if role not in ROLES and role != "system":
            raise OiLocalError(f"A message has the role {role!r}; use one of user, assistant, computer.")
        if "content" not in message:
            raise OiLocalError(f"A message has no 'content': {message!r}. LMC messages look like "
                               '{"role": "user", "type": "message", "content": "..."}.')
        return [{"type": "message", **message, "role": role}]
    if isinstance(message, (list, tuple)):
        out: list[dict] = []
        for item in message:
            out.extend(normalize(item))
        return out
    raise OiLocalError(f"chat() takes a string, an LMC message (dict) or a list of them, not {type(message).__name__}.")


def _fence(language: str, code: str) -> str:
    return f"```{language}\n{code.rstrip()}\n```"


def _image_part(message: dict) -> dict | None:
    fmt = message.get("format", "base64.png")
    content = message.get("content", "")
    if fmt == "path":
        return {"type": "text", "text": f"(image at {content})"}
    mime = "jpeg" if fmt.endswith("jpeg") else "png"
    return {"type": "image_url", "image_url": {"url": f"data:image/{mime};base64,{content}"}}


def to_llm_messages(lmc: list[dict], system_message: str, templates: Templates) -> list[dict]:
    """The conversation as a text-only chat model reads it: one system message, code inside the assistant's
    text as fences, each run's output as a message from `code_output_sender` through the output templates,
    neighbouring messages of one role joined (many local chat templates require alternation)."""
    last_user = None
    for index, message in enumerate(lmc):
        if message.get("role") == "user" and message.get("type", "message") == "message":
            last_user = index
    out: list[dict] = []
    if system_message:
        out.append({"role": "system", "content": system_message})

    def add(role: str, text: Any) -> None:
        if out and out[-1]["role"] == role and isinstance(out[-1]["content"], str) and isinstance(text, str):
            out[-1] = {"role": role, "content": out[-1]["content"] + "\n\n" + text}
        else:
            out.append({"role": role, "content": text})

    outputs: list[str] | None = None  # console output of the runs since the assistant last wrote
    task, task_at, task_head = "", None, ""  # the user's last message, where it is in `out`, what precedes it there

    def flush_output() -> None:
        nonlocal outputs
        if outputs is None:
            return
        text = "\n".join(o.strip("\n") for o in outputs if o.strip())
        if text:
            body = fill(templates.code_output_template, truncate_output(text, templates.max_output))
        else:
            body = templates.empty_code_output_template
        add("assistant" if templates.code_output_sender == "assistant" else "user", body)
        outputs = None

    for index, message in enumerate(lmc):
        role, kind = message.get("role"), message.get("type", "message")
        content = message.get("content")
        if role == "computer" and kind == "console":
            if message.get("format", "output") == "output":
                outputs = (outputs or []) + [str(content or "")]
            continue
        if role == "computer" and kind == "confirmation":
            continue
        if role == "computer" and kind == "message" and message.get("format") == "repair":
            outputs = None  # the agent's repair request quotes the output itself
            if message.get("restart") and task_at is not None:
                # the model reads the task again with the note, not its failed attempts (it would copy them)
                del out[task_at + 1:]
                note = "" if message.get("resolved") else "\n\n" + str(content or "")  # no note once it worked
                asked = fill(templates.user_message_template, task + note)
                out[task_at] = {"role": "user", "content": task_head + "\n\n" + asked if task_head else asked}
            else:
                add("user", str(content or ""))
            continue
        flush_output()
        if role == "assistant" and kind == "code":
            add("assistant", _fence(message.get("format") or "", str(content or "")))
            continue
        if kind == "image":
            if templates.supports_vision:
                out.append({"role": "user", "content": [_image_part(message)]})
            else:
                add("user", "(An image was produced; this model cannot see images.)")
            continue
        if role == "system":
            add("system", str(content or ""))
            continue
        text = str(content or "")
        if role == "user":
            if kind == "message" and index == last_user:
                joined = bool(out) and out[-1]["role"] == "user" and isinstance(out[-1]["content"], str)
                task, task_at = text, len(out) - 1 if joined else len(out)
                task_head = out[-1]["content"] if joined else ""
            if index == last_user or templates.always_apply_user_message_template:
                text = fill(templates.user_message_template, text)
            add("user", text)
        elif role == "assistant":
            add("assistant", text)
        else:  # computer messages of other kinds
            add("user", text)
    flush_output()
    return out


def last_user_text(lmc: list[dict]) -> str:
    """The text of the user's last message (the task at hand), "" when there is none."""
    for message in reversed(lmc):
        if message.get("role") == "user" and message.get("type", "message") == "message":
            content = message.get("content")
            return content if isinstance(content, str) else ""
    return ""


def unexecuted_code(lmc: list[dict]) -> bool:
    """Whether the conversation ends with a code block that has no output yet."""
    for message in reversed(lmc):
        if message.get("role") == "computer":
            return False
        if message.get("type") == "code":
            return True
    return False
