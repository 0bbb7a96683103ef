"""OpenInterpreter: the agent. It sends the conversation to the model, turns the model's markdown code blocks
into LMC code messages while the reply streams, asks (through a confirmation chunk) before running each
block, runs it on its computer, feeds the output back, and goes on until the model answers without code."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oi_local import settings as declared
from oi_local.agent import messages as lmc
from oi_local.agent.codeblocks import FenceParser
from oi_local.agent.llm import LOCAL_STOP_SEQUENCES, Llm
from oi_local.agent.templates import LOCAL_DEFAULT, LOOP_BREAKERS, PromptVariant
from oi_local.errors import OiLocalError

if TYPE_CHECKING:
    from oi_local.endpoint import Endpoint


class OpenInterpreter:
    """The seed's `OpenInterpreter`: every setting is an attribute of the same name (see the seed's
    settings/all-settings page); instances are independent of each other."""

    def __init__(self, messages: list[dict] | None = None, computer: Any = None, llm: Llm | None = None,
                 **settings: Any) -> None:
        """`settings`: any of the agent's and the terminal's settings in oi_local.settings by attribute name
        (offline, auto_run, max_output, system_message, safe_mode, plain, ...); the rest keep their declared
        defaults. An unknown name is a TypeError."""
        self._messages: list[dict] = lmc.normalize(messages) if messages else []
        for name, value in declared.initial_values("agent", settings, caller="OpenInterpreter").items():
            setattr(self, name, value)
        self.loop_breakers = list(LOOP_BREAKERS)
        self.max_turns = 16  # model replies per chat() call: a small model can otherwise write code forever
        self.stop_on_repeated_code = False  # local defaults: a block identical to one already run ends the turn
        self.example_messages: list[dict] = []  # worked example turns sent after the system message
        self.total_cost = 0.0
        self.anonymized_telemetry = False  # nothing is ever sent anywhere
        self.llm = llm or Llm()
        self._computer = computer
        self._warned: set[str] = set()

    # -- state ----------------------------------------------------------------------------------------

    @property
    def messages(self) -> list[dict]:
        return self._messages

    @messages.setter
    def messages(self, value: list[dict] | None) -> None:
        self._messages = lmc.normalize(list(value)) if value else []

    @property
    def computer(self) -> Any:
        if self._computer is None:
            from oi_local.computer import Computer

            self._computer = Computer()
        return self._computer

    @computer.setter
    def computer(self, value: Any) -> None:
        self._computer = value

    def reset(self) -> None:
        """A new conversation: messages cleared, a new conversation file, the computer's languages stopped."""
        if self._computer is not None:
            self._computer.terminate()
        self._messages = []
        self.conversation_filename = None
        self.total_cost = 0.0

    # -- configuration --------------------------------------------------------------------------------

    def configure_for(self, endpoint: Endpoint, *, local_defaults: bool = True) -> None:
        """Point the model settings at `endpoint`; with local_defaults, apply the settings measured best for
        small local models (templates, offline, no function calling, the default temperature, stop sequences)."""
        self.llm.model = endpoint.llm_model
        self.llm.api_base = endpoint.api_base
        self.llm.api_key = endpoint.api_key
        self.llm.context_window = endpoint.context_window
        self.llm.max_tokens = endpoint.max_tokens
        self.llm.extra_body = dict(endpoint.extra_body)
        if local_defaults:
            self.offline = True
            self.llm.supports_functions = False
            self.llm.supports_vision = False
            self.llm.temperature = declared.default("llm.temperature")
            self.llm.stop = list(LOCAL_STOP_SEQUENCES)
            self.stop_on_repeated_code = True
            self.max_turns = 6
            self.apply_prompt_variant(LOCAL_DEFAULT)

    def apply_prompt_variant(self, variant: PromptVariant) -> None:
        self.system_message = variant.system_message
        self.llm.execution_instructions = variant.execution_instructions
        self.user_message_template = variant.user_message_template
        self.always_apply_user_message_template = variant.always_apply_user_message_template
        self.code_output_template = variant.code_output_template
        self.empty_code_output_template = variant.empty_code_output_template
        self.code_output_sender = variant.code_output_sender
        self.example_messages = [{"role": role, "content": content} for role, content in variant.examples]
        for name, value in variant.settings.items():
            setattr(self, name, value)

    def full_system_message(self) -> str:
        parts = [self.system_message or ""]
        if self.custom_instructions:
            parts.append(str(self.custom_instructions))
        if not self.llm.supports_functions and self.llm.execution_instructions:
            parts.append(str(self.llm.execution_instructions))
        computer_message = getattr(self._computer, "system_message", None)
        if isinstance(computer_message, str) and computer_message.strip():
            parts.append(computer_message.strip())
        for language in getattr(self._computer, "languages", None) or []:
            extra = getattr(language, "system_message", None)
            if isinstance(extra, str) and extra.strip():
                parts.append(extra.strip())
        return "\n\n".join(p.strip() for p in parts if p and p.strip())

    def templates(self) -> lmc.Templates:
        return lmc.Templates(
            user_message_template=self.user_message_template or "{content}",
            always_apply_user_message_template=self.always_apply_user_message_template,
            code_output_template=self.code_output_template or "{content}",
            empty_code_output_template=self.empty_code_output_template or "",
            code_output_sender=self.code_output_sender,
            max_output=self.llm.max_output if self.llm.max_output is not None else self.max_output,
            supports_vision=self.llm.supports_vision,
        )

    def llm_messages(self) -> list[dict]:
        """What the model is sent next (before trimming to the context window)."""
        converted = lmc.to_llm_messages(self._messages, self.full_system_message(), self.templates())
        if not self.example_messages:
            return converted
        head = 1 if converted and converted[0]["role"] == "system" else 0
        return converted[:head] + [dict(m) for m in self.example_messages] + converted[head:]

    def _protected_head(self, llm_messages: list[dict]) -> int | None:
        """Trimming keeps the system message, the example turns and the user's first task."""
        if not self.example_messages:
            return None
        head = (1 if llm_messages and llm_messages[0]["role"] == "system" else 0) + len(self.example_messages)
        return min(head + 1, len(llm_messages))

    # -- chat -----------------------------------------------------------------------------------------

    def chat(self, message: Any = None, display: bool = True, stream: bool = False) -> Any:
        """The seed's chat(): with stream=True a generator of LMC chunks (also shown in the terminal when
        display is True; the caller answers confirmations); otherwise the new messages, shown in the terminal
        when display is True. With no message and display=True, an interactive chat in the terminal."""
        if stream:
            return self._stream_and_show(message) if display else self._stream(message)
        if display:
            from oi_local.terminal import chat_loop, render

            start = len(self._messages)
            if message is None:
                chat_loop(self, plain=self.plain, multi_line=self.multi_line)
                return self._messages[start:]
            return render(self, message, plain=self.plain)
        start = self._accept(message)
        for _ in self._respond():
            pass
        return self._messages[start:]

    def _accept(self, message: Any) -> int:
        """Add the caller's message(s); returns where the new messages of this call start."""
        if message is None:
            return len(self._messages)
        if isinstance(message, (list, tuple)):
            # the seed: a list is the whole conversation to continue from
            self._messages = lmc.normalize(list(message))
            return len(self._messages)
        start = len(self._messages)
        self._messages.extend(lmc.normalize(message))
        return start

    def _stream_and_show(self, message: Any) -> Iterator[dict]:
        from oi_local.terminal.display import make_display

        display = make_display(self.plain)
        try:
            for chunk in self._stream(message):
                if chunk.get("type") != "confirmation":
                    display.chunk(chunk)
                yield chunk
        finally:
            display.close()

    def _stream(self, message: Any) -> Iterator[dict]:
        self._accept(message)
        yield from self._respond()

    def _respond(self) -> Iterator[dict]:
        turns = 0
        already_run: set[tuple[str, str]] = set()
        try:
            while True:
                turns += 1
                self._check_budget()
                reply = yield from self._model_reply()
                self._account_cost()
                ran = False
                for code_message in [m for m in reply if m["type"] == "code" and m["content"].strip()]:
                    key = (code_message.get("format") or "", code_message["content"].strip())
                    if self.stop_on_repeated_code and key in already_run:
                        self._note_once("repeat", "the model repeated code it already ran; the turn ends here")
                        ran = False
                        break
                    already_run.add(key)
                    yield from self._run_code(code_message)
                    ran = True
                self._save()
                if turns >= self.max_turns:
                    if ran or self.loop:
                        self._note(f"stopped after {turns} model replies (max_turns)")
                    break
                if ran:
                    continue
                if self.loop and not self._loop_done(reply):
                    self._messages.append({"role": "user", "type": "message", "content": self.loop_message})
                    continue
                break
        finally:
            self._save()

    def _model_reply(self) -> Iterator[dict]:
        """Stream one model reply as LMC chunks, recording its messages as they grow; returns them."""
        llm_messages = self.llm_messages()
        if self.verbose:
            self._note(f"sending {len(llm_messages)} messages to {self.llm.model} at {self.llm.api_base}")
        parser = FenceParser()
        reply: list[dict] = []
        pieces = self.llm.run(llm_messages, keep_head=self._protected_head(llm_messages))
        try:
            for piece in pieces:
                for chunk in parser.feed(piece):
                    self._record(chunk, reply)
                    yield chunk
            for chunk in parser.finish():
                self._record(chunk, reply)
                yield chunk
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
        return reply

    def _record(self, chunk: dict, reply: list[dict]) -> None:
        if chunk.get("start"):
            message = {k: v for k, v in chunk.items() if k != "start"}
            message["content"] = ""
            self._messages.append(message)
            reply.append(message)
        elif "content" in chunk and reply:
            reply[-1]["content"] += chunk["content"]

    def _run_code(self, code_message: dict) -> Iterator[dict]:
        language = code_message.get("format") or "python"
        confirmation = {
            "role": "computer",
            "type": "confirmation",
            "format": "execution",
            "content": {"type": "code", "format": language, "content": code_message["content"]},
        }
        yield confirmation  # the consumer declines by not asking for the next chunk
        code = confirmation["content"].get("content", code_message["content"])  # the terminal may edit it
        code_message["content"] = code
        self._sync_computer()
        output: list[str] = []
        yield {"role": "computer", "type": "console", "start": True}
        try:
            try:
                for chunk in self.computer.run(language, code, stream=True):
                    chunk = {**chunk, "role": "computer"}
                    if chunk.get("start") or chunk.get("end"):
                        continue
                    kind = chunk.get("type")
                    if kind == "console" and chunk.get("format") == "output":
                        output.append(str(chunk.get("content") or ""))
                    elif kind == "image":
                        self._messages.append({k: chunk[k] for k in ("role", "type", "format", "content") if k in chunk})
                    yield chunk
            except OiLocalError as error:
                text = f"{error}\n"
                output.append(text)
                yield {"role": "computer", "type": "console", "format": "output", "content": text}
            except Exception as error:  # a broken language must not end the conversation: tell the model
                text = f"The {language} runner failed: {type(error).__name__}: {error}\n"
                output.append(text)
                yield {"role": "computer", "type": "console", "format": "output", "content": text}
        finally:
            self._messages.append({"role": "computer", "type": "console", "format": "output", "content": "".join(output)})
        yield {"role": "computer", "type": "console", "format": "active_line", "content": None}
        yield {"role": "computer", "type": "console", "end": True}

    def _sync_computer(self) -> None:
        computer = self.computer
        for name in ("offline", "verbose", "safe_mode"):
            if hasattr(computer, name):
                setattr(computer, name, getattr(self, name))

    def _loop_done(self, reply: list[dict]) -> bool:
        text = " ".join(m["content"] for m in reply if m["type"] == "message")
        return any(breaker.lower().rstrip(".") in text.lower() for breaker in self.loop_breakers)

    # -- budget, history, notes -----------------------------------------------------------------------

    def _check_budget(self) -> None:
        if self.max_budget is None:
            return
        if self.llm.is_local:
            self._note_once("budget", "max_budget is ignored: a local model has no cost")
            return
        if self.total_cost >= self.max_budget:
            raise OiLocalError(
                f"The budget of ${self.max_budget} for this session is spent (${self.total_cost:.4f} so far). "
                "Raise max_budget (--max_budget) to go on."
            )

    def _account_cost(self) -> None:
        if self.max_budget is None:
            return
        cost = self.llm.cost()
        if cost is None:
            self._note_once("cost", f"the price of {self.llm.model} is unknown: max_budget cannot be enforced")
            return
        self.total_cost += cost

    def conversation_path(self) -> Path:
        folder = self.conversation_history_path
        if folder is None:
            from oi_local.machine.paths import app_paths

            folder = app_paths().conversations
        if not self.conversation_filename:
            from oi_local.agent.conversations import new_filename

            self.conversation_filename = new_filename(self._messages)
        return Path(folder) / self.conversation_filename

    def _save(self) -> None:
        if not self.conversation_history or not self._messages:
            return
        from oi_local.agent.conversations import save

        try:
            save(self._messages, self.conversation_path())
        except OSError as error:
            self._note_once("save", f"the conversation could not be saved ({error}); history is off for this session")
            self.conversation_history = False

    def _note(self, text: str) -> None:
        print(f"[oi_local] {text}", file=sys.stderr)

    def _note_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            if self.verbose or key == "save":
                self._note(text)
