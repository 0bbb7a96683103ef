"""A recorded agent turn for terminal tests: replays LMC chunks the way the agent streams them.

It honours the agent's contract the terminal relies on: the confirmation chunk comes before any
execution, closing the generator there means nothing runs, and the code that runs is read from the
last code message after the confirmation (so an edit made at the prompt is what runs).
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any


class RecordedComputer:
    def __init__(self) -> None:
        self.stopped = 0

    def stop(self) -> None:
        self.stopped += 1


class RecordedTurn:
    """interpreter-shaped: messages, auto_run, llm, computer, chat(message, stream=True, display=False)."""

    def __init__(self, code: str = "print(6 * 7)", *, language: str = "python", interrupt_while_running: bool = False) -> None:
        self.messages: list[dict[str, Any]] = []
        self.auto_run = False
        self.verbose = False
        self.system_message = "You run code."
        self.custom_instructions = ""
        self.offline = True
        self.llm = type("Llm", (), {"model": "openai/test", "api_base": "http://127.0.0.1:9/v1", "context_window": 2048})()
        self.computer = RecordedComputer()
        self.code = code
        self.language = language
        self.interrupt_while_running = interrupt_while_running
        self.executed: list[str] = []

    def reset(self) -> None:
        self.messages = []

    def safety_report(self, language, code):
        """The agent's contract: what safe_mode says before a run comes from the agent (its computer scans)."""
        from oi_local.computer.safe_mode import scan

        return scan(language or "python", code)

    def chat(self, message=None, display=True, stream=False):
        if message is not None:
            self.messages.append({"role": "user", "type": "message", "content": message})
        yield {"role": "assistant", "type": "message", "start": True}
        for piece in ("I will ", "compute it."):
            yield {"role": "assistant", "type": "message", "content": piece}
        yield {"role": "assistant", "type": "message", "end": True}
        self.messages.append({"role": "assistant", "type": "message", "content": "I will compute it."})
        yield {"role": "assistant", "type": "code", "format": self.language, "start": True}
        for line in self.code.splitlines(keepends=True):
            yield {"role": "assistant", "type": "code", "format": self.language, "content": line}
        yield {"role": "assistant", "type": "code", "format": self.language, "end": True}
        self.messages.append({"role": "assistant", "type": "code", "format": self.language, "content": self.code})
        yield {"role": "computer", "type": "confirmation", "format": "execution",
               "content": {"type": "code", "format": self.language, "content": self.code}}
        code = self.messages[-1]["content"]
        self.executed.append(code)
        yield {"role": "computer", "type": "console", "start": True}
        yield {"role": "computer", "type": "console", "format": "active_line", "content": 1}
        if self.interrupt_while_running:
            raise KeyboardInterrupt
        output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30).stdout
        yield {"role": "computer", "type": "console", "format": "output", "content": output}
        yield {"role": "computer", "type": "console", "format": "active_line", "content": None}
        yield {"role": "computer", "type": "console", "end": True}
        self.messages.append({"role": "computer", "type": "console", "format": "output", "content": output})
        yield {"role": "assistant", "type": "message", "start": True}
        yield {"role": "assistant", "type": "message", "content": f"The answer is {output.strip()}."}
        yield {"role": "assistant", "type": "message", "end": True}
        self.messages.append({"role": "assistant", "type": "message", "content": f"The answer is {output.strip()}."})


def answers(*replies: str):
    """A read() for prompts that returns the replies in order and records the questions asked."""
    asked: list[str] = []
    queue = list(replies)

    def read(prompt: str) -> str:
        asked.append(prompt)
        if not queue:
            raise EOFError
        reply = queue.pop(0)
        if isinstance(reply, BaseException) or (isinstance(reply, type) and issubclass(reply, BaseException)):
            raise reply
        return reply

    read.asked = asked
    return read
