"""The agent's control flow with scripted model replies (through the seed's `llm.completions` hook) and a
custom language registered through `computer.languages` (the seed's extension point): streaming chunks,
confirmation before execution, templates, loop, truncation, history, instances."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from oi_local import OpenInterpreter
from oi_local.agent.conversations import list_saved, load
from oi_local.agent.templates import LOCAL_DEFAULT
from oi_local.endpoint import Endpoint
from oi_local.errors import OiLocalError


class SubprocessPython:
    """A real custom language (seed: code-execution/custom-languages): each run is a fresh `python -c`."""

    name = "python"
    runs: list[str] = []

    def run(self, code):
        SubprocessPython.runs.append(code)
        yield {"type": "console", "format": "active_line", "content": 1}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        yield {"type": "console", "format": "output", "content": done.stdout + done.stderr}

    def stop(self):
        pass

    def terminate(self):
        pass


class Scripted:
    """An OpenAI-style completions function that replies from a script, in randomly sized delta chunks,
    and keeps every request it received."""

    def __init__(self, *replies: str, seed: int = 0) -> None:
        self.replies = list(replies)
        self.requests: list[dict] = []
        self.random = random.Random(seed)

    def __call__(self, **params):
        self.requests.append(params)
        reply = self.replies.pop(0) if self.replies else "Nothing more to do."
        position = 0
        while position < len(reply):
            step = self.random.randint(1, 7)
            yield {"choices": [{"delta": {"content": reply[position:position + step]}}]}
            position += step

    def sent(self, index: int = -1) -> list[dict]:
        return self.requests[index]["messages"]


@pytest.fixture
def make(tmp_path):
    SubprocessPython.runs = []

    def make_interpreter(*replies: str, **settings) -> tuple[OpenInterpreter, Scripted]:
        interpreter = OpenInterpreter(conversation_history_path=tmp_path / "conversations", **settings)
        interpreter.computer.languages = [SubprocessPython]
        script = Scripted(*replies)
        interpreter.llm.completions = script
        return interpreter, script

    return make_interpreter


CODE_REPLY = "Let me compute.\n```python\nprint(34 / 24)\n```"


def test_stream_chunks_in_the_documented_order(make):
    interpreter, _ = make(CODE_REPLY, "The result is about 1.42.")
    chunks = list(interpreter.chat("What's 34/24?", stream=True, display=False))
    kinds = [(c["role"], c["type"], c.get("format"), "start" if c.get("start") else "end" if c.get("end") else "content")
             for c in chunks]
    confirmation = kinds.index(("computer", "confirmation", "execution", "content"))
    first_console = next(i for i, k in enumerate(kinds) if k[1] == "console")
    assert kinds[:3] == [("assistant", "message", None, "start"), ("assistant", "message", None, "content"),
                         ("assistant", "message", None, "content")]
    assert ("assistant", "code", "python", "start") in kinds[:confirmation]
    assert kinds[confirmation - 1] == ("assistant", "code", "python", "end")
    assert confirmation < first_console
    assert chunks[confirmation]["content"] == {"type": "code", "format": "python", "content": "print(34 / 24)"}
    console = [c for c in chunks if c["type"] == "console"]
    assert console[0] == {"role": "computer", "type": "console", "start": True}
    assert {"role": "computer", "type": "console", "format": "active_line", "content": 1} in console
    assert {"role": "computer", "type": "console", "format": "output", "content": "1.4166666666666667\n"} in console
    assert console[-2:] == [{"role": "computer", "type": "console", "format": "active_line", "content": None},
                            {"role": "computer", "type": "console", "end": True}]
    text = "".join(c.get("content", "") for c in chunks if c["type"] == "message" and "content" in c)
    assert text == "Let me compute.The result is about 1.42."


def test_nothing_runs_before_the_confirmation_is_consumed_and_declining_stops(make):
    interpreter, script = make(CODE_REPLY, "unused")
    stream = interpreter.chat("What's 34/24?", stream=True, display=False)
    for chunk in stream:
        if chunk["type"] == "confirmation":
            assert SubprocessPython.runs == []
            stream.close()
            break
    assert SubprocessPython.runs == []
    assert len(script.requests) == 1
    assert interpreter.messages[-1] == {"role": "assistant", "type": "code", "format": "python", "content": "print(34 / 24)"}


def test_chat_returns_the_new_lmc_messages(make):
    interpreter, script = make(CODE_REPLY, "The result is about 1.42.")
    new = interpreter.chat("What's 34/24?", display=False)
    assert new == [
        {"role": "user", "type": "message", "content": "What's 34/24?"},
        {"role": "assistant", "type": "message", "content": "Let me compute."},
        {"role": "assistant", "type": "code", "format": "python", "content": "print(34 / 24)"},
        {"role": "computer", "type": "console", "format": "output", "content": "1.4166666666666667\n"},
        {"role": "assistant", "type": "message", "content": "The result is about 1.42."},
    ]
    assert interpreter.messages == new
    # the model saw its code as a fence and the output through the code output template
    second = script.sent(1)
    assert second[-2] == {"role": "assistant", "content": "Let me compute.\n\n```python\nprint(34 / 24)\n```"}
    assert second[-1]["role"] == "user"
    assert second[-1]["content"].startswith("Code output: 1.4166666666666667")


def test_several_blocks_run_in_order_and_all_outputs_go_back(make):
    reply = "```python\nprint('one')\n```\nand\n```python\nprint('two')\n```"
    interpreter, script = make(reply, "Both printed.")
    interpreter.code_output_template = "OUT[{content}]"
    interpreter.chat("go", display=False)
    assert SubprocessPython.runs == ["print('one')", "print('two')"]
    assert script.sent(1)[-1] == {"role": "user", "content": "OUT[one\ntwo]"}


def test_messages_can_be_assigned_to_resume_and_reset_clears(make):
    interpreter, script = make("Hello Killian.")
    interpreter.messages = [
        {"role": "user", "type": "message", "content": "My name is Killian."},
        {"role": "assistant", "type": "message", "content": "Nice to meet you."},
    ]
    interpreter.chat("What is my name?", display=False)
    sent = script.sent()
    assert [m["content"] for m in sent[1:]] == ["My name is Killian.", "Nice to meet you.", "What is my name?"]
    assert interpreter.messages[-1]["content"] == "Hello Killian."
    interpreter.reset()
    assert interpreter.messages == []


def test_older_message_shapes_are_accepted(make):
    interpreter, _ = make()
    interpreter.messages = [
        {"role": "user", "message": "Hi! Can you print hello world?"},
        {"role": "assistant", "language": "python", "code": "print('Hello, World!')", "output": "Hello, World!"},
    ]
    assert interpreter.messages == [
        {"role": "user", "type": "message", "content": "Hi! Can you print hello world?"},
        {"role": "assistant", "type": "code", "format": "python", "content": "print('Hello, World!')"},
        {"role": "computer", "type": "console", "format": "output", "content": "Hello, World!"},
    ]


def test_bad_message_gets_a_clear_error(make):
    interpreter, _ = make()
    with pytest.raises(OiLocalError, match="content"):
        interpreter.chat({"role": "user", "type": "message"}, display=False)
    with pytest.raises(OiLocalError, match="takes a string"):
        interpreter.chat(42, display=False)


def test_instances_are_independent(make):
    first, first_script = make("one")
    second, second_script = make("two")
    first.system_message = "This is a separate instance."
    second.system_message = "This is yet another instance."
    first.chat("a", display=False)
    second.chat("b", display=False)
    assert first_script.sent()[0]["content"].startswith("This is a separate instance.")
    assert second_script.sent()[0]["content"].startswith("This is yet another instance.")
    assert [m["content"] for m in first.messages] == ["a", "one"]
    assert [m["content"] for m in second.messages] == ["b", "two"]
    assert first.llm is not second.llm


def test_user_message_template_wraps_only_the_last_user_message(make):
    interpreter, script = make("ok", "ok")
    interpreter.user_message_template = "<<{content}>>"
    interpreter.chat("first", display=False)
    interpreter.chat("second", display=False)
    users = [m["content"] for m in script.sent() if m["role"] == "user"]
    assert users == ["first", "<<second>>"]
    interpreter.always_apply_user_message_template = True
    interpreter.llm.completions = again = Scripted("ok")
    interpreter.chat("third", display=False)
    assert [m["content"] for m in again.sent() if m["role"] == "user"] == ["<<first>>", "<<second>>", "<<third>>"]


def test_braces_in_messages_do_not_break_templates(make):
    interpreter, script = make("ok")
    interpreter.user_message_template = "Task: {content}"
    interpreter.chat("print({'a': 1})", display=False)
    assert script.sent()[-1]["content"] == "Task: print({'a': 1})"


def test_empty_output_template_and_output_sender(make):
    interpreter, script = make("```python\nx = 1\n```", "done")
    interpreter.empty_code_output_template = "NO OUTPUT"
    interpreter.code_output_sender = "assistant"
    interpreter.chat("set x", display=False)
    assert script.sent(1)[-1] == {"role": "assistant", "content": "```python\nx = 1\n```\n\nNO OUTPUT"}


def test_max_output_truncates_what_the_model_sees(make):
    interpreter, script = make("```python\nprint('x' * 10000 + 'END')\n```", "long")
    interpreter.max_output = 100
    interpreter.code_output_template = "{content}"
    interpreter.chat("long output", display=False)
    fed_back = script.sent(1)[-1]["content"]
    assert fed_back.startswith("Output truncated. Showing the last 100 characters.")
    assert fed_back.endswith("xxxEND") and len(fed_back) < 200
    assert len(interpreter.messages[-2]["content"]) == 10004  # the user still has all of it


def test_loop_continues_until_the_model_says_it_is_done(make):
    interpreter, script = make("I will think about it.", "Still thinking.", "The task is done.", "never asked")
    interpreter.loop = True
    new = interpreter.chat("do the thing", display=False)
    assert len(script.requests) == 3
    assert [m["content"] for m in new if m["role"] == "user"][1:] == [interpreter.loop_message] * 2
    assert new[-1]["content"] == "The task is done."


def test_without_loop_a_reply_without_code_ends_the_turn(make):
    interpreter, script = make("Just text.", "never asked")
    interpreter.chat("hi", display=False)
    assert len(script.requests) == 1


def test_max_turns_and_repeated_code_bound_a_model_that_never_stops(make):
    interpreter, script = make(*["```python\nprint(1)\n```"] * 30)
    interpreter.max_turns = 4
    interpreter.chat("go", display=False)
    assert len(script.requests) == 4
    interpreter, script = make(*["```python\nprint(1)\n```"] * 30)
    interpreter.stop_on_repeated_code = True
    interpreter.chat("go", display=False)
    assert len(script.requests) == 2 and SubprocessPython.runs == ["print(1)"] * 5


def test_the_seeds_custom_model_example(make):
    interpreter, _ = make()

    def custom_language_model(messages, model, stream, max_tokens):
        users_content = messages[-1].get("content")
        for character in users_content:
            yield {"choices": [{"delta": {"content": character}}]}

    interpreter.llm.completions = custom_language_model
    interpreter.llm.context_window = 2000
    interpreter.llm.max_tokens = 1000
    assert interpreter.chat("Hi!", display=False)[-1] == {"role": "assistant", "type": "message", "content": "Hi!"}


def test_temperature_zero_is_sent_and_settings_reach_the_request(make):
    interpreter, script = make("ok")
    interpreter.llm.model = "openai/smollm2-135m"
    interpreter.llm.api_base = "http://127.0.0.1:9/v1"
    interpreter.llm.max_tokens = 77
    interpreter.chat("hi", display=False)
    request = script.requests[0]
    assert request["temperature"] == 0 and request["stream"] is True
    assert (request["model"], request["api_base"], request["max_tokens"]) == ("openai/smollm2-135m", "http://127.0.0.1:9/v1", 77)


def test_configure_for_applies_the_local_defaults(make):
    interpreter, script = make("ok")
    endpoint = Endpoint("http://127.0.0.1:9/v1", "smollm2-135m", "key", 2048, 256, "llamacpp")
    interpreter.configure_for(endpoint)
    assert (interpreter.llm.model, interpreter.llm.api_key, interpreter.llm.context_window) == ("openai/smollm2-135m", "key", 2048)
    assert interpreter.offline is True and interpreter.llm.supports_functions is False
    assert interpreter.system_message == LOCAL_DEFAULT.system_message
    interpreter.llm.completions = script
    interpreter.chat("What is 2 + 2?", display=False)
    assert script.sent()[-1]["content"] == LOCAL_DEFAULT.user_message_template.replace("{content}", "What is 2 + 2?")
    ollama = Endpoint("http://127.0.0.1:11434", "qwen2.5-coder:1.5b", None, 8192, 1024, "ollama")
    interpreter.configure_for(ollama)
    params = interpreter.llm.request_params([])
    assert params["model"] == "ollama_chat/qwen2.5-coder:1.5b" and params["num_ctx"] == 8192


def test_conversation_is_saved_after_every_turn(make, tmp_path):
    interpreter, _ = make(CODE_REPLY, "The result is about 1.42.", "Bye.")
    interpreter.chat("What's 34/24?", display=False)
    saved = list_saved(tmp_path / "conversations")
    assert len(saved) == 1 and saved[0].title == "What's 34/24?"
    assert load(saved[0].path) == interpreter.messages
    interpreter.chat("thanks", display=False)
    assert json.loads(saved[0].path.read_text())[-1]["content"] == "Bye."
    assert len(list_saved(tmp_path / "conversations")) == 1


def test_no_history_when_turned_off(make, tmp_path):
    interpreter, _ = make("ok", conversation_history=False)
    interpreter.chat("hi", display=False)
    assert not (tmp_path / "conversations").exists()


def test_max_budget_with_a_local_model_has_no_cost(make):
    interpreter, _ = make("ok", "ok")
    interpreter.llm.api_base = "http://127.0.0.1:9/v1"
    interpreter.max_budget = 0.0
    interpreter.chat("hi", display=False)
    interpreter.chat("again", display=False)
    assert interpreter.total_cost == 0.0


def test_a_failing_language_is_reported_to_the_model_not_raised(make):
    class Broken:
        name = "python"

        def run(self, code):
            raise RuntimeError("kernel is gone")
            yield  # pragma: no cover

        def stop(self):
            pass

        def terminate(self):
            pass

    interpreter, script = make(CODE_REPLY, "I see.")
    interpreter.computer.languages = [Broken]
    interpreter.chat("go", display=False)
    assert "kernel is gone" in script.sent(1)[-1]["content"]


def test_litellm_is_imported_only_when_the_model_is_called_and_after_the_local_cost_map_is_set():
    script = (
        "import os, sys, socket\n"
        "os.environ.pop('LITELLM_LOCAL_MODEL_COST_MAP', None)\n"
        "from oi_local import interpreter, OpenInterpreter\n"
        "interpreter.system_message; OpenInterpreter().llm.model\n"
        "assert 'litellm' not in sys.modules, 'litellm imported too early'\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()\n"
        "i = OpenInterpreter(conversation_history=False)\n"
        # a model litellm serves (Ollama's API; a local OpenAI-compatible server is asked without litellm)
        "i.llm.model, i.llm.api_base, i.llm.timeout = 'ollama_chat/x', f'http://127.0.0.1:{port}', 10\n"
        "from oi_local.errors import OiLocalError\n"
        "try:\n"
        "    i.chat('hi', display=False)\n"
        "except OiLocalError as e:\n"
        "    assert f'127.0.0.1:{port}' in str(e)\n"
        "assert 'litellm' in sys.modules and os.environ['LITELLM_LOCAL_MODEL_COST_MAP'] == 'True'\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]


def test_stream_with_display_yields_the_same_chunks_and_shows_them(make, capsys):
    interpreter, _ = make(CODE_REPLY, "The result is about 1.42.", plain=True)
    chunks = list(interpreter.chat("What's 34/24?", stream=True, display=True))
    assert any(c["type"] == "confirmation" for c in chunks)
    shown = capsys.readouterr().out
    assert "print(34 / 24)" in shown and "1.4166666666666667" in shown and "about 1.42" in shown


def test_chat_with_display_renders_through_the_terminal_and_returns_the_new_messages(make, capsys):
    interpreter, _ = make(CODE_REPLY, "The result is about 1.42.", plain=True, auto_run=True)
    new = interpreter.chat("What's 34/24?")
    assert [m["type"] for m in new] == ["message", "message", "code", "console", "message"]
    assert "1.4166666666666667" in capsys.readouterr().out


def test_example_turns_follow_the_system_message_and_survive_trimming(make):
    from oi_local.agent.templates import EXAMPLE_TURNS

    interpreter, script = make("ok")
    interpreter.apply_prompt_variant(EXAMPLE_TURNS)
    interpreter.llm.context_window, interpreter.llm.max_tokens = 1200, 100
    interpreter.messages = [{"role": "user", "type": "message", "content": "FIRST TASK"}] + [
        {"role": "assistant" if n % 2 else "user", "type": "message", "content": f"filler {n} " + "x" * 300}
        for n in range(1, 12)
    ]
    interpreter.chat("LAST", display=False)
    sent = script.sent()
    examples = [{"role": r, "content": c} for r, c in EXAMPLE_TURNS.examples]
    assert sent[0]["role"] == "system" and sent[1:1 + len(examples)] == examples
    assert sent[1 + len(examples)]["content"].startswith("FIRST TASK")
    assert "filler 1 " not in str(sent)  # the oldest middle messages were dropped
    assert sent[-1]["content"].startswith("LAST")


def test_llm_max_output_is_honoured_too(make):
    interpreter, script = make("```python\nprint('y' * 500)\n```", "ok")
    interpreter.llm.max_output = 50
    interpreter.code_output_template = "{content}"
    interpreter.chat("go", display=False)
    assert script.sent(1)[-1]["content"].startswith("Output truncated. Showing the last 50 characters.")
