"""Worked examples chosen per task, the envelope grammar (with the real server and the test model), and the
start-up warm-up (a real kernel, a real server's prompt cache)."""

from __future__ import annotations

import pytest

from oi_local import OpenInterpreter
from oi_local.agent import examples, grammar, warmup
from oi_local.agent.templates import CHOSEN_EXAMPLES, PYTHON_POOL
from oi_local.endpoint import Endpoint


def test_the_closest_examples_come_last():
    chosen = examples.select(PYTHON_POOL, "List the files in this directory.", 2)
    requests = [m["content"] for m in chosen if m["role"] == "user" and not m["content"].startswith("Output:")]
    assert requests[-1] == "Show the files in the current folder."
    assert len(chosen) == 8
    assert examples.select(PYTHON_POOL, "", 1) == [{"role": r, "content": c} for r, c in PYTHON_POOL[0]]
    assert examples.words("How many files are in the folders?") == {"file", "folder"}
    assert examples.words("Make a directory") == {"create", "folder"}  # words that ask for the same thing


def test_a_shared_leading_verb_breaks_a_tie():
    pool = (
        (("user", "Show the files in the current folder."), ("assistant", "a")),
        (("user", "Create a folder called photos."), ("assistant", "b")),
    )
    chosen = examples.select(pool, "Create a folder named reports in the current directory.", 1)
    assert chosen[0]["content"] == "Create a folder called photos."


def test_the_agent_sends_the_examples_chosen_for_the_last_task():
    interpreter = OpenInterpreter(conversation_history=False)
    interpreter.apply_prompt_variant(CHOSEN_EXAMPLES)
    sent = []
    interpreter.llm.completions = lambda messages, **kw: sent.append(messages) or iter(["Fine."])
    interpreter.chat("What does the file notes.txt say?", display=False)
    assert sent[0][0]["role"] == "system"
    assert sent[0][-5]["content"] == "What does the file todo.txt say?"  # the closest example, just before the task
    assert sent[0][-1]["content"].startswith("What does the file notes.txt say?")


def test_the_grammar_makes_the_test_model_reply_with_one_block_in_the_language_asked(llama_server):
    import httpx

    body = {"model": llama_server.model_id, "temperature": 0, "max_tokens": 48,
            "messages": [{"role": "user", "content": "Tell me a story about a cat."}],
            "grammar": grammar.code_block(("shell",))}
    reply = httpx.post(f"{llama_server.base_url}/chat/completions", json=body,
                       headers={"Authorization": f"Bearer {llama_server.api_key}"}, timeout=120).json()
    text = reply["choices"][0]["message"]["content"]
    assert text.startswith("```shell\n")


@pytest.fixture
def local_agent(llama_server):
    interpreter = OpenInterpreter(conversation_history=False)
    interpreter.configure_for(Endpoint(llama_server.base_url, llama_server.model_id, llama_server.api_key, 2048, 64, "custom"))
    return interpreter


def test_warm_up_starts_the_kernel_and_prefills_the_servers_prompt_cache(local_agent):
    warm = warmup.begin()
    try:
        warm.attach(local_agent)
        assert local_agent.computer is warm.computer
        assert warm.prefill_thread is not None
        warm.prefill_thread.join(120)
        warm.imports.join(120)
        assert "12" in "".join(m["content"] for m in local_agent.computer.run("python", "print(math.isqrt(144))"))
        messages = warmup.prefill_messages(local_agent)
        assert messages[0]["role"] == "system" and len(messages) == 1 + len(local_agent.example_messages)
    finally:
        warm.computer.terminate()


def test_no_prefill_for_a_custom_completions_function(local_agent):
    local_agent.llm.completions = lambda **kw: iter(["x"])
    assert warmup.prefill(local_agent) is None
