"""Turn: one chat() call of the agent. The model replies; its code blocks run (each after a confirmation
chunk); the output goes back; and so on until the model answers without code.

When a run fails and repairs remain (agent.max_repairs per turn), the next message to the model is a short
repair request built from the error (repair.py) instead of the plain output; a reply that only restates the
error, or repeats the code that failed, gets one too. With agent.check_asked_files, a turn that ends while
a file or folder the task asked for is missing is told so. Each such request is an LMC message
{"role": "computer", "type": "message", "format": "repair"} in the conversation (messages.py sends it to the
model in place of the output it contains).

With agent.precheck_samples, a reply whose code cannot work as written (precheck.py: Python that does not
parse, a name nothing defines, a call that fails whatever the data, what the task names left out) is
replaced by the best of that many sampled replies (seeded, so a run repeats), and code that would write
over a file the task only names does not run. With agent.short_answers, the answer after a run that worked
is asked from the task and its output alone (a small model copies the worked examples' answers); with
agent.check_answers, an answer that says nothing of the output is asked for once more. With
agent.fallback_examples, the replies after a failure (any repair request but that one for the answer) are
asked with the examples of the pool closest to the task in place of the fixed ones; with agent.precheck_pool,
a first reply no sample mends is sampled again with that pool's closest examples. A block tagged shell that
holds Python runs as Python (codeblocks.python_in_shell).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from oi_local.agent import grammar, precheck, repair
from oi_local.agent.codeblocks import FenceParser, parse, python_in_shell
from oi_local.agent.messages import last_user_text
from oi_local.agent.templates import (
    ANSWER_SYSTEM_MESSAGE,
    ANSWER_TEMPLATE,
    NOT_RUN_TEMPLATE,
    REPAIR_TEMPLATES,
)
from oi_local.errors import OiLocalError

if TYPE_CHECKING:
    from oi_local.agent.core import OpenInterpreter

REPAIR_FORMAT = "repair"


def reply_text(reply: list[dict]) -> str:
    return " ".join(m["content"] for m in reply if m["type"] == "message")


class Turn:
    def __init__(self, agent: OpenInterpreter) -> None:
        self.agent = agent
        self.replies = 0
        self.repairs = 0
        self.already_run: set[tuple[str, str]] = set()
        self.failure: repair.Failure | None = None  # of the last run, while not yet repaired
        self.asked_for_paths = False
        self.asked_for_answer = False
        self.last_output = self.last_code = ""  # of the last run that did not fail
        self.repairing = False  # the next reply answers a repair request
        self.failed = False  # a run failed, or the turn was told what is missing (agent.fallback_examples)
        self.task = last_user_text(agent.messages)

    def run(self) -> Iterator[dict]:
        agent = self.agent
        try:
            while True:
                self.replies += 1
                agent._check_budget()
                reply = yield from self._model_reply()
                agent._account_cost()
                outcome = yield from self._run_blocks(reply)
                agent._save()
                if self.replies >= agent.max_turns:
                    if outcome != "none" or agent.loop:
                        agent._note(f"stopped after {self.replies} model replies (max_turns)")
                    break
                if outcome == "ran" or self._asked_again(reply, outcome):
                    continue
                if agent.loop and not agent._loop_done(reply):
                    agent.messages.append({"role": "user", "type": "message", "content": agent.loop_message})
                    continue
                break
        finally:
            agent._save()

    # -- repairs ------------------------------------------------------------------------------------------

    def _can_repair(self) -> bool:
        return self.repairs < (self.agent.max_repairs or 0)

    def _ask(self, text: str, restart: bool = True, failed: bool = True) -> None:
        self.repairs += 1
        self.repairing = True
        self.failed = self.failed or failed
        message = {"role": "computer", "type": "message", "format": REPAIR_FORMAT, "content": text}
        if self.agent.repair_restart and restart:
            message["restart"] = True
        self.agent.messages.append(message)

    def _with_line(self) -> bool:
        return not self.agent.repair_restart

    def _template(self, name: str) -> str:
        templates = self.agent.repair_templates
        return templates["restart"] if self.agent.repair_restart and name != "missing" else templates[name]

    def _reply_overrides(self) -> dict | None:
        """A repair reply may be sampled (its own temperature, a seed per attempt: repeatable); a task's first
        reply may be constrained to one code block (a GBNF grammar, for llama.cpp-family servers)."""
        agent = self.agent
        overrides: dict = {}
        if self.repairing and agent.repair_temperature is not None:
            overrides.update(temperature=agent.repair_temperature, seed=self.repairs)
        if self.replies == 1 and agent.first_reply_grammar:
            overrides["grammar"] = grammar.code_block(tuple(agent.first_reply_grammar))
        return overrides or None

    def _asked_again(self, reply: list[dict], outcome: str) -> bool:
        """After a reply that ran nothing: a repair request when one is due (and allowed)."""
        if not self._can_repair():
            return False
        failure = self.failure
        if failure is not None:
            if outcome == "repeated":
                self._ask(repair.request(failure, "", self._template("restated"), repeated=True, with_line=self._with_line(),
                                          task=self.task))
                return True
            if repair.restates(reply_text(reply), failure):
                self._ask(repair.request(failure, "", self._template("restated"), with_line=self._with_line(), task=self.task))
                return True
        if self.agent.check_asked_files and not self.asked_for_paths and failure is None:
            missing = repair.missing_paths(self.task)
            if missing:
                self.asked_for_paths = True
                self._ask(self._template("missing").replace("{content}", ", ".join(missing))
                          .replace("{code}", repair.creation_code(missing)))
                return True
        if (failure is None and outcome == "none" and self.agent.check_answers and not self.asked_for_answer
                and self.last_output and not repair.grounded(reply_text(reply), self.last_output, self.task + " " + self.last_code)):
            self.asked_for_answer = True
            self._ask(self.agent.repair_templates.get("ungrounded", REPAIR_TEMPLATES["ungrounded"]).replace(
                "{content}", self.last_output.strip()), restart=False, failed=False)
            return True
        return False

    # -- one model reply ----------------------------------------------------------------------------------

    def _model_reply(self) -> Iterator[dict]:
        """Stream one model reply as LMC chunks, recording its messages as they grow; returns them. Code that
        cannot work (precheck) is replaced by the best of a few sampled alternatives, when allowed."""
        agent = self.agent
        llm_messages = agent.llm_messages(fallback=self.failed)
        overrides, self.repairing = self._reply_overrides(), False
        if agent.short_answers and self.last_output.strip() and self._output_is_last():
            answer = self._short_answer(overrides)
            if answer is not None:
                return (yield from self._stream(iter([answer])))
        if agent.verbose:
            agent._note(f"sending {len(llm_messages)} messages to {agent.llm.model} at {agent.llm.api_base}")
        pieces = agent.llm.run(llm_messages, keep_head=agent._protected_head(llm_messages), overrides=overrides)
        reply = yield from self._stream(pieces)
        if agent.precheck_samples > 0:
            reply = yield from self._prechecked(reply, llm_messages, overrides)
        return reply

    def _stream(self, pieces) -> Iterator[dict]:
        parser = FenceParser()
        reply: list[dict] = []
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

    def _short_answer(self, overrides: dict | None) -> str | None:
        """The answer to the task from its output alone (no examples to copy); None when the model writes code
        there instead (the reply is then asked in the whole conversation)."""
        messages = [{"role": "system", "content": ANSWER_SYSTEM_MESSAGE},
                    {"role": "user", "content": ANSWER_TEMPLATE.replace("{task}", self.task).replace(
                        "{content}", self.last_output.strip())}]
        overrides = dict(overrides or {}, stop=[*(self.agent.llm.stop or []), "Question:"])
        text = "".join(self.agent.llm.run(messages, overrides=overrides))
        return None if precheck.blocks(parse(text)) or not text.strip() else text

    def _output_is_last(self) -> bool:
        messages = self.agent.messages
        return bool(messages) and messages[-1].get("type") == "console" and messages[-1].get("content") == self.last_output

    def _known_names(self) -> set[str]:
        """Names Python code may use without defining them: the kernel's everyday modules and what the
        conversation's code has defined."""
        from oi_local.computer.languages.python import PRELOAD

        preload = getattr(self.agent.computer.get_language("python"), "preload", None)
        names = {name for name, _, _ in (PRELOAD if preload is None else preload)} | precheck.KERNEL_NAMES
        for message in self.agent.messages:
            if message.get("type") == "code" and (message.get("format") or "python") == "python":
                names |= precheck.defined_names(str(message.get("content") or ""))
        return names

    def _prechecked(self, reply: list[dict], llm_messages: list[dict], overrides: dict | None) -> Iterator[dict]:
        """Code that cannot work as written (precheck.py) is replaced by the best of up to
        agent.precheck_samples replies sampled at agent.precheck_temperature (seeded, so repeatable); the
        model's own reply stays when none is better. Before any failure in the turn, when no sample mends it,
        as many again are sampled with the closest examples of agent.precheck_pool in place of the others."""
        agent = self.agent
        known, cwd = self._known_names(), Path.cwd()
        fewest = len(precheck.reply_problems(reply, self.task, known, cwd))
        if not fewest:  # no code, or nothing wrong with it
            return reply
        best_text, fewest = self._best_sample(llm_messages, overrides, known, cwd, fewest)
        if fewest and agent.precheck_pool and agent.fallback_examples and not self.failed:
            text, fewest = self._best_sample(self._pool_messages(reply), overrides, known, cwd, fewest)
            best_text = text or best_text
        if best_text is None:
            return reply
        agent.messages[:] = [m for m in agent.messages if not any(m is r for r in reply)]
        agent._note("that code could not work as written; the model wrote it again")
        return (yield from self._stream(iter([best_text])))

    def _pool_messages(self, reply: list[dict]) -> list[dict]:
        """The request of the reply being checked, with agent.precheck_pool's closest examples in place of the
        others (the reply itself is not in it: the model would go on with it)."""
        agent = self.agent
        kept = agent.messages[:]
        agent.messages[:] = [m for m in kept if not any(m is r for r in reply)]
        try:
            return agent.llm_messages(fallback=True, pool=agent.precheck_pool)
        finally:
            agent.messages[:] = kept

    def _best_sample(self, llm_messages: list[dict], overrides: dict | None, known: set[str], cwd: Path,
                     fewest: int) -> tuple[str | None, int]:
        """The first sampled reply with no problems, else the one with the fewest (None: none has fewer than
        `fewest`), and its number of problems."""
        agent = self.agent
        best_text = None
        for seed in range(1, agent.precheck_samples + 1):
            sample = dict(overrides or {}, temperature=agent.precheck_temperature, seed=seed)
            text = "".join(agent.llm.run(llm_messages, keep_head=agent._protected_head(llm_messages), overrides=sample))
            candidate = parse(text)
            if not precheck.blocks(candidate):
                continue
            found = precheck.reply_problems(candidate, self.task, known, cwd)
            if len(found) < fewest:
                best_text, fewest = text, len(found)
                if not found:
                    break
        return best_text, fewest

    def _record(self, chunk: dict, reply: list[dict]) -> None:
        if chunk.get("start"):
            message = {k: v for k, v in chunk.items() if k != "start"}
            message["content"] = ""
            self.agent.messages.append(message)
            reply.append(message)
        elif "content" in chunk and reply:
            reply[-1]["content"] += chunk["content"]

    def _run_blocks(self, reply: list[dict]) -> Iterator[dict]:
        """Run the reply's code blocks in order: "ran", "repeated" (it repeated code already run) or "none"."""
        agent = self.agent
        outcome = "none"
        first_failure = None
        for code_message in [m for m in reply if m["type"] == "code" and m["content"].strip()]:
            if code_message.get("format") == "shell" and python_in_shell(code_message["content"]):
                code_message["format"] = "python"
                agent._note_once("python-in-shell", "a block tagged shell holds Python: it runs as Python")
            language = code_message.get("format") or "python"
            key = (code_message.get("format") or "", code_message["content"].strip())
            if agent.stop_on_repeated_code and key in self.already_run:
                agent._note_once("repeat", "the model repeated code it already ran; the turn ends here")
                outcome = "repeated"
                break
            self.already_run.add(key)
            harm = precheck.overwrites(code_message["content"], self.task, Path.cwd()) if agent.precheck_samples else []
            if harm:  # a file the task only names is not written over: the code does not run
                output = NOT_RUN_TEMPLATE.replace("{content}", ", ".join(harm)).replace("{code}", repair.read_code(harm[0]))
                yield from self._not_run(output)
                outcome = "ran"
                if first_failure is None:
                    first_failure = repair.Failure(language, "not run", output)
                    if self._can_repair():
                        self._ask(self._template("failed").replace("{content}", output).replace("{error}", output))
                continue
            output = yield from self._run_code(code_message)
            outcome = "ran"
            failure = repair.diagnose(language, code_message["content"], output)
            if failure is None:
                self.last_output, self.last_code = output, code_message["content"]
            if failure is not None and first_failure is None:
                first_failure = failure
                if self._can_repair():
                    # the request replaces the plain output in what the model reads next
                    self._ask(repair.request(failure, output, self._template("failed"), with_line=self._with_line(),
                                              task=self.task))
        if outcome == "ran":
            self.failure = first_failure
            if first_failure is None:
                self._resolve_restarts()
        return outcome

    def _not_run(self, text: str) -> Iterator[dict]:
        self.agent.messages.append({"role": "computer", "type": "console", "format": "output", "content": text})
        yield {"role": "computer", "type": "console", "start": True}
        yield {"role": "computer", "type": "console", "format": "output", "content": text + "\n"}
        yield {"role": "computer", "type": "console", "end": True}

    def _resolve_restarts(self) -> None:
        """The code works now: the model reads the task as it was, its good code and the output (no note)."""
        for message in reversed(self.agent.messages):
            if message.get("role") == "user" and message.get("type", "message") == "message":
                break
            if message.get("format") == REPAIR_FORMAT and message.get("restart"):
                message["resolved"] = True

    def _run_code(self, code_message: dict) -> Iterator[dict]:
        """Confirm, run and record one block; returns its output text."""
        agent = self.agent
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
        agent._sync_computer()
        output: list[str] = []
        yield {"role": "computer", "type": "console", "start": True}
        try:
            try:
                for chunk in agent.computer.run(language, code, stream=True):
                    chunk = {**chunk, "role": "computer"}
                    if chunk.get("start") or chunk.get("end"):
                        continue
                    kind = chunk.get("type")
                    if kind == "console" and chunk.get("format") == "output":
                        output.append(str(chunk.get("content") or ""))
                    elif kind == "image":
                        agent.messages.append({k: chunk[k] for k in ("role", "type", "format", "content") if k in chunk})
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
            agent.messages.append({"role": "computer", "type": "console", "format": "output", "content": "".join(output)})
        yield {"role": "computer", "type": "console", "format": "active_line", "content": None}
        yield {"role": "computer", "type": "console", "end": True}
        return "".join(output)
