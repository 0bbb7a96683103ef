"""Talking to the model: context trimming, the model's own tokenizer through the real llama.cpp server,
clear errors (refused, died mid-stream, hung), and the whole loop with the real test model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from conftest import start_raw_server

from oi_local import OpenInterpreter
from oi_local.agent.llm import Llm, TokenCounter, estimate_tokens, trim_messages
from oi_local.endpoint import Endpoint
from oi_local.errors import OiLocalError
from oi_local.serving.ports import free_port


def by_length(messages):
    return sum(len(m["content"]) for m in messages)


def conversation(n: int, size: int = 100) -> list[dict]:
    messages = [{"role": "system", "content": "S" * 50}, {"role": "user", "content": "TASK" + "t" * 46}]
    for i in range(n):
        messages.append({"role": "assistant" if i % 2 == 0 else "user", "content": f"{i:03d}" + "x" * (size - 3)})
    return messages


def test_trimming_keeps_system_and_first_task_and_drops_from_the_middle():
    messages = conversation(10)
    trimmed = trim_messages(messages, 450, by_length)
    assert by_length(trimmed) <= 450
    assert trimmed[0] == messages[0] and trimmed[1]["content"].startswith(messages[1]["content"])
    assert trimmed[-1] == messages[-1]
    text = " ".join(m["content"] for m in trimmed)
    assert "008" in text and "009" in text
    assert "000" not in text and "001" not in text  # the oldest middle messages went first
    roles = [m["role"] for m in trimmed[1:]]
    assert all(roles[k] != roles[k + 1] for k in range(len(roles) - 1))  # still alternating for strict chat templates


def test_trimming_leaves_a_fitting_conversation_alone():
    messages = conversation(4)
    assert trim_messages(messages, 10_000, by_length) is messages


def test_trimming_cuts_the_middle_of_a_huge_message():
    messages = conversation(0) + [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "A" * 3000 + "Z" * 3000}]
    trimmed = trim_messages(messages, 1000, by_length)
    assert by_length(trimmed) <= 1000
    assert trimmed[0]["content"] == "S" * 50 and trimmed[1]["content"].startswith("TASK")
    last = trimmed[-1]["content"]
    assert "AAAA" in last and last.endswith("Z") and "characters cut to fit the context window" in last


def test_estimate_is_conservative():
    text = "def add(a, b):\n    return a + b\n" * 20
    assert estimate_tokens(text) >= len(text) / 4


@pytest.fixture(scope="module")
def own_server(test_model_path, tmp_path_factory):
    """A server this module may pause and kill (the session's llama_server is shared)."""
    server = start_raw_server(test_model_path, log_path=tmp_path_factory.mktemp("own") / "server.log")
    yield server
    if server.process.poll() is None:
        os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


def test_tokens_are_counted_with_the_models_own_tokenizer(llama_server):
    counter = TokenCounter(llama_server.base_url, llama_server.api_key)
    text = "Hello, world! def f(x): return x ** 2  # ünïcode"
    n = counter.count(text)
    assert counter.exact and counter.mode == "extras"
    direct = httpx.post(
        f"http://127.0.0.1:{llama_server.port}/extras/tokenize/count",
        json={"input": text},
        headers={"Authorization": f"Bearer {llama_server.api_key}"},
    ).json()["count"]
    assert n == direct
    assert n < estimate_tokens(text)  # the estimate errs on the safe side


def test_without_a_tokenizer_the_counter_estimates():
    counter = TokenCounter(f"http://127.0.0.1:{free_port()}/v1", None, timeout=2)
    assert counter.count("hello world, hello world") == estimate_tokens("hello world, hello world")
    assert counter.mode == "estimate" and not counter.exact


def test_fit_to_context_uses_the_real_count(llama_server):
    llm = Llm()
    llm.api_base, llm.api_key = llama_server.base_url, llama_server.api_key
    llm.context_window, llm.max_tokens = 512, 128
    messages = conversation(40, size=200)
    fitted = llm.fit_to_context(messages)
    assert llm.token_counter.exact
    assert llm.count_tokens(fitted) <= 512 - 128 - llm.trim_margin
    assert fitted[:2] == messages[:2] and fitted[-1] == messages[-1]


def make_llm(base_url: str, api_key: str | None, timeout: float = 20) -> Llm:
    llm = Llm()
    llm.model, llm.api_base, llm.api_key = "openai/smollm2-135m", base_url, api_key
    llm.max_tokens, llm.timeout = 200, timeout
    return llm


def test_streaming_from_the_real_server(llama_server):
    llm = make_llm(llama_server.base_url, llama_server.api_key)
    pieces = list(llm.run([{"role": "user", "content": "Say hello."}]))
    assert len(pieces) > 1 and "".join(pieces).strip()


def test_a_local_openai_compatible_server_is_asked_without_importing_litellm(llama_server):
    """litellm's import costs 2-3 s of CPU before the first answer; a local server is asked over plain HTTP."""
    code = (
        "import sys\n"
        "from oi_local.agent.llm import Llm\n"
        "llm = Llm()\n"
        f"llm.model, llm.api_base, llm.api_key = 'openai/smollm2-135m', {llama_server.base_url!r}, {llama_server.api_key!r}\n"
        "llm.max_tokens = 16\n"
        "text = ''.join(llm.run([{'role': 'user', 'content': 'Say hello.'}]))\n"
        "print(bool(text.strip()), 'litellm' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["True", "False"], done.stderr[-800:]


def test_only_openai_models_served_on_this_machine_skip_litellm():
    from oi_local.endpoint import needs_litellm, speaks_openai_here

    assert speaks_openai_here("openai/x", "http://127.0.0.1:8080/v1")
    assert not speaks_openai_here("openai/x", "https://api.example.com/v1")  # another machine: litellm
    assert not speaks_openai_here("ollama_chat/x", "http://127.0.0.1:11434")  # Ollama's own API: litellm
    assert not speaks_openai_here("gpt-4o", None)
    assert needs_litellm("ollama") and needs_litellm("custom", "https://api.example.com/v1")
    assert not needs_litellm("llamacpp") and not needs_litellm("custom", "http://localhost:1234/v1")


def test_connection_refused_is_a_clear_error_naming_the_server():
    base = f"http://127.0.0.1:{free_port()}/v1"
    llm = make_llm(base, "k", timeout=10)
    started = time.monotonic()
    with pytest.raises(OiLocalError) as error:
        list(llm.run([{"role": "user", "content": "hi"}]))
    assert base in str(error.value) and "could not be reached" in str(error.value)
    assert time.monotonic() - started < 60


def test_a_wrong_api_key_is_named(llama_server):
    llm = make_llm(llama_server.base_url, "wrong-key")
    with pytest.raises(OiLocalError, match="rejected the API key"):
        list(llm.run([{"role": "user", "content": "hi"}]))


def test_a_hung_server_times_out_instead_of_hanging(own_server):
    llm = make_llm(own_server.base_url, None, timeout=3)
    os.kill(own_server.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(OiLocalError) as error:
            list(llm.run([{"role": "user", "content": "hi"}]))
        assert own_server.base_url in str(error.value)
        assert time.monotonic() - started < 60
    finally:
        os.kill(own_server.process.pid, signal.SIGCONT)


def test_a_server_dying_mid_stream_is_a_clear_error(own_server):
    llm = make_llm(own_server.base_url, None)
    llm.max_tokens = 400
    pieces = llm.run([{"role": "user", "content": "Write a long story about a cat and a dog."}])
    first = next(pieces)
    assert first
    own_server.process.kill()
    own_server.process.wait()
    with pytest.raises(OiLocalError) as error:
        for _ in pieces:
            pass
    assert own_server.base_url in str(error.value)


def test_the_whole_loop_with_the_real_model(llama_server, tmp_path, monkeypatch):
    """A task in, code written by the model, run by the computer, output fed back, an answer out."""
    monkeypatch.chdir(tmp_path)
    interpreter = OpenInterpreter(conversation_history_path=tmp_path / "conversations", auto_run=True)
    interpreter.configure_for(Endpoint(llama_server.base_url, llama_server.model_id, llama_server.api_key, 2048, 256, "llamacpp"))
    try:
        new = interpreter.chat("What is 17 * 23?", display=False)
    finally:
        interpreter.computer.terminate()
    code = [m for m in new if m["type"] == "code"]
    outputs = [m["content"] for m in new if m["role"] == "computer" and m["type"] == "console"]
    assert code and code[0]["format"] == "python" and "17" in code[0]["content"]
    assert any("391" in output for output in outputs)  # the real output of the model's code
    assert new[-1]["role"] == "assistant"  # the model answered after seeing the output
