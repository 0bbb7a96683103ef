"""OpenInterpreter: the agent. It sends the conversation to the model, turns the model's markdown code blocks
into LMC code messages while the reply streams, asks (through a confirmation chunk) before running each
block, runs it on its computer, feeds the output back, and goes on until the model answers without code."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from oi_local import settings as declared
from oi_local.agent import messages as lmc
from oi_local.agent.examples import select as select_examples
from oi_local.agent.llm import LOCAL_STOP_SEQUENCES, Llm
from oi_local.agent.precheck import SAMPLE_TEMPERATURE
from oi_local.agent.templates import (
    LOCAL_DEFAULT,
    LOCAL_HARNESS,
    LOOP_BREAKERS,
    REPAIR_TEMPLATES,
    PromptVariant,
)
from oi_local.agent.turn import Turn
from oi_local.errors import OiLocalError

if TYPE_CHECKING:
    from oi_local.endpoint import Endpoint


class AgentDisplay(Protocol):
    """What shows a chat: handed to the agent by its caller (the terminal's is oi_local.terminal.front)."""

    def turn(self, agent: OpenInterpreter, message: Any) -> list[dict]: ...  # one turn shown, questions asked

    def chat_loop(self, agent: OpenInterpreter) -> Any: ...  # an interactive chat

    def stream(self, agent: OpenInterpreter, chunks: Iterator[dict]) -> Iterator[dict]: ...  # shown as they pass


class OpenInterpreter:
    """The seed's `OpenInterpreter`: every setting is an attribute of the same name (see the seed's
    settings/all-settings page); instances are independent of each other.

    display_factory makes the display chat(display=True) uses: None here (the agent knows no terminal);
    `oi_local.OpenInterpreter` and `oi_local.interpreter` come with the terminal's."""

    display_factory: Callable[[OpenInterpreter], AgentDisplay] | None = None

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
        self.max_repairs = 0  # repair requests per chat() call after a failed run (local defaults: measured)
        self.check_asked_files = False  # tell the model when a file or folder the task asked for is missing
        self.repair_templates: dict[str, str] = dict(REPAIR_TEMPLATES)  # "failed", "restated", "missing", "restart"
        self.repair_restart = False  # a repair restates the task with the error instead of continuing after it
        self.repair_temperature: float | None = None  # a repair reply's temperature (seeded); None: llm's
        # code that cannot work (agent/precheck.py) is replaced by the best of this many sampled replies; while
        # this is on, code that would write over a file the task only names does not run
        self.precheck_samples = 0
        self.precheck_temperature = SAMPLE_TEMPERATURE
        self.check_answers = False  # an answer that says nothing of the output is asked for again, once
        self.short_answers = False  # after a run that worked, the answer is asked from the task and output alone
        self.first_reply_grammar: tuple[str, ...] = ()  # llama.cpp servers: a task's first reply is one block in these
        # (the settings above from max_repairs on: issue 10's harness; LOCAL_HARNESS has the local defaults)
        self.example_messages: list[dict] = []  # worked example turns sent after the system message
        self.example_pool: tuple = ()  # worked examples to choose from per task (agent/examples.py)
        self.examples_per_task = 0  # how many of the pool are sent (the closest to the task last)
        # after a failure in the turn (a run that failed or was not run, or what the task asked for missing),
        # this many examples of the pool closest to the task are sent in place of the fixed ones (0: never)
        self.fallback_examples = 0
        # a first reply whose code cannot work (precheck) when no sample mends it: that many examples of this
        # pool closest to the task, in place of the others, for another round of samples (empty: no round)
        self.precheck_pool: tuple = ()
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
            for name, value in LOCAL_HARNESS.items():
                setattr(self, name, value)
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
        self.example_pool, self.examples_per_task = variant.example_pool, variant.examples_per_task
        self.fallback_examples, self.precheck_pool = variant.fallback_examples, variant.precheck_pool
        self.repair_templates = dict(variant.repair_templates)
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

    def examples_for(self, task: str, fallback: bool = False, pool: tuple = ()) -> list[dict]:
        """The worked example turns sent before the conversation: the fixed ones, then those of the pool
        closest to the task; with `fallback` (and agent.fallback_examples), the closest of the pool (or of
        `pool` when given) alone."""
        pool = pool or self.example_pool
        if fallback and pool and self.fallback_examples:
            return select_examples(pool, task, self.fallback_examples)
        chosen = [dict(m) for m in self.example_messages]
        if self.example_pool and self.examples_per_task:
            chosen += select_examples(self.example_pool, task, self.examples_per_task)
        return chosen

    def llm_messages(self, fallback: bool = False, pool: tuple = ()) -> list[dict]:
        """What the model is sent next (before trimming to the context window); `fallback`, `pool`: see
        examples_for."""
        converted = lmc.to_llm_messages(self._messages, self.full_system_message(), self.templates())
        examples = self.examples_for(lmc.last_user_text(self._messages), fallback, pool)
        self._examples_sent = len(examples)
        if not examples:
            return converted
        head = 1 if converted and converted[0]["role"] == "system" else 0
        return converted[:head] + examples + converted[head:]

    def _protected_head(self, llm_messages: list[dict]) -> int | None:
        """Trimming keeps the system message, the example turns and the user's first task."""
        sent = getattr(self, "_examples_sent", len(self.example_messages))
        if not sent:
            return None
        head = (1 if llm_messages and llm_messages[0]["role"] == "system" else 0) + sent
        return min(head + 1, len(llm_messages))

    # -- chat -----------------------------------------------------------------------------------------

    def chat(self, message: Any = None, display: Any = True, stream: bool = False) -> Any:
        """The seed's chat(): with stream=True a generator of LMC chunks (also shown when display is set; the
        caller answers confirmations); otherwise the new messages, shown when display is set. With no message
        and a display, an interactive chat. `display` is True (the display_factory's display), False, or a
        display object from the caller (see AgentDisplay)."""
        if stream:
            return self._display(display).stream(self, self._stream(message)) if display else self._stream(message)
        if display:
            shown = self._display(display)
            start = len(self._messages)
            if message is None:
                shown.chat_loop(self)
                return self._messages[start:]
            return shown.turn(self, message)
        start = self._accept(message)
        for _ in self._respond():
            pass
        return self._messages[start:]

    def _display(self, display: Any) -> AgentDisplay:
        if display is not True:
            return display
        if self.display_factory is None:
            raise OiLocalError(
                "chat(display=True) needs a display, and this interpreter has none. Use the package's "
                "`from oi_local import OpenInterpreter` (it shows chats in the terminal), set "
                "interpreter.display_factory, or call chat(..., display=False)."
            )
        return self.display_factory(self)

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

    def _stream(self, message: Any) -> Iterator[dict]:
        self._accept(message)
        yield from self._respond()

    def _respond(self) -> Iterator[dict]:
        yield from Turn(self).run()

    def safety_report(self, language: str | None, code: str) -> Any:
        """What safe_mode says about `code` before it runs (None when it is off, or there is nothing new to
        say): the computer scans it. A display shows the report; it never scans by itself."""
        self._sync_computer()
        report_for = getattr(self.computer, "safety_report", None)
        if callable(report_for):
            return report_for(language or "python", code)
        if str(self.safe_mode or "off") == "off":
            return None
        from oi_local.computer import safe_mode as scanner

        return scanner.scan(language or "python", code, config=getattr(self.computer, "semgrep_config", "auto"))

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
