"""Precheck (code that cannot work, told before it runs), the sampled replies that replace it, a file the task
only names kept from being written over, and the answer checks: precheck's own rules on real code and real
folders, and the agent's loop with scripted replies (the seed's `llm.completions` hook) running code in a
real IPython kernel."""

from __future__ import annotations

import re

import pytest

from oi_local import OpenInterpreter
from oi_local.agent import precheck, repair
from oi_local.agent.general_examples import GENERAL_POOL
from oi_local.agent.templates import (
    ANSWER_SYSTEM_MESSAGE,
    EXAMPLE_TURNS_FALLBACK,
    EXAMPLE_TURNS_GENERAL,
    LOCAL_HARNESS,
)

KERNEL = {"os", "math", "Path"}


# -- precheck's rules ------------------------------------------------------------------------------------


def test_names_nothing_defines_and_python_that_does_not_parse(tmp_path):
    task = "What is the answer?"
    assert precheck.problems("python", "print(file_name)", task, KERNEL, tmp_path) == ["`file_name` is not defined"]
    assert precheck.problems("python", "print(f'{x}'", task, KERNEL, tmp_path) == ["it is not valid Python"]
    defined = "import json\nrows = [1]\nfor row in rows:\n    print(json.dumps(row), math.pi, len(rows))\n" \
              "def f(a):\n    return a\nprint(f(2 + 2), [y for y in rows])"
    assert precheck.problems("python", defined, task, KERNEL, tmp_path) == []
    assert precheck.problems("python", "print(math.sqrt(4))", task, set(), tmp_path) == ["`math` is not defined"]


def test_calls_that_fail_whatever_the_data(tmp_path):
    assert precheck.call_problems("print(len(os.path.getsize()))", KERNEL) == [
        "os.path.getsize(): missing a required argument: 'filename'"]
    assert precheck.call_problems('print(open("a.txt").read()) + "done"', KERNEL) == [
        "print() returns None, so its result cannot be used"]
    assert precheck.call_problems("print(len([1, 2]), os.path.join('a', 'b'), math.sqrt(4))", KERNEL) == []
    assert precheck.call_problems("os = None\nos.path.getsize()", KERNEL) == []  # the code's own name


def test_what_the_task_names_must_be_used(tmp_path):
    (tmp_path / "data.txt").write_text("1\n2\n")
    task = 'How many lines are in data.txt, and what is "abc" reversed, and the sum from 1 to 100?'
    assert precheck.task_literals(task) == precheck.Literals(("data.txt",), ("abc",), ("1", "100"))
    found = precheck.problems("python", "print(1)", task, KERNEL, tmp_path)
    assert found == ["it does not use data.txt", 'it does not use "abc"', "it does not use 100"]
    good = 'print(len(open("data.txt").readlines()), "abc"[::-1], sum(range(1, 101)))'
    assert precheck.problems("python", good, task, KERNEL, tmp_path) == []  # 101 is the neighbour of 100
    assert precheck.problems("python", "print(1)", "Create a folder named reports.", KERNEL, tmp_path) == [
        "it does not make reports"]


def test_a_file_copied_from_an_example_and_a_file_written_over(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    task = "Print the contents of the file notes.txt."
    assert precheck.problems("python", 'print(open("notes.txt").read(), len("report.pdf"))', task, KERNEL,
                             tmp_path) == ["report.pdf is not here"]
    overwrite = 'with open("notes.txt", "w") as f:\n    f.write("x")'
    assert precheck.overwrites(overwrite, task, tmp_path) == ["notes.txt"]
    assert precheck.overwrites(overwrite, "Write hello into a file named notes.txt.", tmp_path) == []  # asked for
    assert precheck.overwrites('print(open("notes.txt").read())', task, tmp_path) == []


def test_an_answer_is_grounded_when_it_says_what_only_the_output_said():
    assert repair.grounded("17 * 23 is 391.", "391\n", "What is 17 * 23? print(17 * 23)")
    assert not repair.grounded("15 * 4 is 60.", "16\n", 'How many characters? print(len("open interpreter"))')
    assert not repair.grounded("It is python.", "PYTHON\n", 'Convert "python" to upper case. print("python".upper())')
    assert repair.grounded("Done.", "hello world\n", "Write hello world. print('hello world')")  # nothing new


# -- the loop ----------------------------------------------------------------------------------------------


class Sampled:
    """Replies by temperature: `greedy` at the model's own temperature, `samples[seed]` when sampled."""

    def __init__(self, greedy: list[str], samples: dict[int, str] | None = None) -> None:
        self.greedy, self.samples = list(greedy), dict(samples or {})
        self.calls: list[tuple[float, int | None, list[dict]]] = []

    def __call__(self, messages, temperature, **params):
        seed = params.get("seed")
        self.calls.append((temperature, seed, [dict(m) for m in messages]))
        if temperature and seed is not None:
            yield self.samples.get(seed, "```python\nprint(undefined_again)\n```")
        else:
            yield self.greedy.pop(0) if self.greedy else "Done."


@pytest.fixture
def agent(agent):
    agent.precheck_samples = 3
    return agent


def code_run(messages: list[dict]) -> list[str]:
    return [m["content"] for m in messages if m["type"] == "code"]


def test_code_that_cannot_work_is_replaced_by_a_sample_that_can_and_only_that_runs(agent):
    model = Sampled(["```python\nprint(answer)\n```", "17 * 23 is 391."], {2: "```python\nprint(17 * 23)\n```"})
    agent.llm.completions = model
    new = agent.chat("What is 17 * 23?", display=False)
    assert [(t, s) for t, s, _ in model.calls[:3]] == [(agent.llm.temperature, None), (0.8, 1), (0.8, 2)]
    assert code_run(new) == ["print(17 * 23)"]  # the greedy reply's code is gone and never ran
    assert [m["content"].strip() for m in new if m["type"] == "console"] == ["391"]
    assert new[-1]["content"] == "17 * 23 is 391."


def test_without_a_better_sample_the_models_own_code_runs_and_is_repaired(agent):
    model = Sampled(["```python\nprint(answer)\n```", "```python\nprint(391)\n```", "It is 391."])
    agent.llm.completions = model
    new = agent.chat("What is 17 * 23?", display=False)
    assert code_run(new)[0] == "print(answer)"
    assert "NameError" in new[[m["type"] for m in new].index("console")]["content"]
    assert [seed for _, seed, _ in model.calls[:5]] == [None, 1, 2, 3, None]  # every sample tried, then the repair


def test_code_without_problems_is_not_sampled_at_all(agent):
    model = Sampled(["```python\nprint(17 * 23)\n```", "391."])
    agent.llm.completions = model
    agent.chat("What is 17 * 23?", display=False)
    assert all(seed is None for _, seed, _ in model.calls)


def test_a_file_the_task_only_names_is_not_written_over(agent, tmp_path):
    (tmp_path / "notes.txt").write_text("The secret word is pineapple.\n")
    overwrite = "```python\nwith open('notes.txt', 'w') as f:\n    f.write('new')\nprint('done')\n```"
    model = Sampled([overwrite, "```python\nprint(open('notes.txt').read())\n```", "It says pineapple."],
                    {seed: overwrite for seed in (1, 2, 3)})
    agent.llm.completions = model
    new = agent.chat("Print the contents of the file notes.txt.", display=False)
    assert (tmp_path / "notes.txt").read_text() == "The secret word is pineapple.\n"
    outputs = [m["content"] for m in new if m["type"] == "console"]
    assert outputs[0].startswith("(Not run: that code would overwrite notes.txt")
    assert "pineapple" in outputs[1] and new[-1]["content"] == "It says pineapple."


def test_the_answer_is_asked_from_the_task_and_output_alone(agent):
    agent.short_answers = True
    model = Sampled(["```python\nprint(len('open interpreter'))\n```", "It has 16 characters."])
    agent.llm.completions = model
    new = agent.chat('How many characters are in "open interpreter"?', display=False)
    asked = model.calls[1][2]
    assert asked[0] == {"role": "system", "content": ANSWER_SYSTEM_MESSAGE}
    assert len(asked) == 2 and 'Question: How many characters are in "open interpreter"?' in asked[1]["content"]
    assert "16" in asked[1]["content"] and new[-1]["content"] == "It has 16 characters."


def test_code_written_as_the_short_answer_is_asked_again_in_the_whole_conversation(agent):
    agent.short_answers = True
    model = Sampled(["```python\nprint(2 + 2)\n```", "```python\nprint(4)\n```", "2 + 2 is 4."])
    agent.llm.completions = model
    new = agent.chat("What is 2 + 2?", display=False)
    assert len(model.calls[2][2]) > 2  # the whole conversation this time
    assert code_run(new) == ["print(2 + 2)"] and new[-1]["content"] == "2 + 2 is 4."


def test_an_answer_that_says_nothing_of_the_output_is_asked_for_once_more(agent):
    agent.check_answers = True
    model = Sampled(["```python\nprint(len('open interpreter'))\n```", "15 * 4 is 60.", "It has 16.", "unused"])
    agent.llm.completions = model
    new = agent.chat('How many characters are in "open interpreter"?', display=False)
    again = model.calls[2][2][-1]["content"]
    assert again.startswith("Output: 16") and "does not use the output" in again
    assert new[-1]["content"] == "It has 16." and len(model.calls) == 3


def test_a_block_tagged_shell_that_holds_python_runs_as_python(agent):
    agent.llm.completions = Sampled(["```shell\nprint(17 * 23)\n```", "17 * 23 is 391."])
    new = agent.chat("What is 17 * 23?", display=False)
    code = next(m for m in new if m["type"] == "code")
    assert code["format"] == "python"
    assert [m["content"].strip() for m in new if m["type"] == "console"] == ["391"]


FIXED_EXAMPLE, POOL_EXAMPLE = "What is 15 * 4?", "How many lines does the file log.txt have?"


def sent(call: tuple) -> list[str]:
    return [m["content"] for m in call[2]]


def test_after_a_failed_run_the_model_is_shown_the_pools_closest_examples(agent, tmp_path):
    (tmp_path / "data.txt").write_text("".join(f"row {i}\n" for i in range(7)))
    agent.apply_prompt_variant(EXAMPLE_TURNS_FALLBACK)
    agent.precheck_samples = 0
    model = Sampled(["```python\nprint(open('data.txt').read().count())\n```",
                     "```python\nprint(len(open('data.txt').readlines()))\n```", "data.txt has 7 lines."])
    agent.llm.completions = model
    new = agent.chat("How many lines are in the file data.txt?", display=False)
    assert "TypeError" in next(m for m in new if m["type"] == "console")["content"]
    assert FIXED_EXAMPLE in sent(model.calls[0]) and POOL_EXAMPLE not in sent(model.calls[0])
    assert POOL_EXAMPLE in sent(model.calls[1]) and FIXED_EXAMPLE not in sent(model.calls[1])
    assert new[-1]["content"] == "data.txt has 7 lines."


def test_an_answer_asked_for_again_keeps_the_fixed_examples(agent):
    agent.apply_prompt_variant(EXAMPLE_TURNS_FALLBACK)
    agent.check_answers = True
    model = Sampled(["```python\nprint(17 * 23)\n```", "15 * 4 is 60.", "It is 391."])
    agent.llm.completions = model
    agent.chat("What is 17 * 23?", display=False)
    assert len(model.calls) == 3 and all(FIXED_EXAMPLE in sent(call) for call in model.calls)


GENERAL_EXAMPLE = 'Convert "happy birthday" to uppercase.'  # the general pool's closest to the task below


class ShownTheIdiom(Sampled):
    """A model that writes the right code only when a worked example shows it the idiom."""

    def __call__(self, messages, temperature, **params):
        if temperature and params.get("seed") is not None and any(m["content"] == GENERAL_EXAMPLE for m in messages):
            self.calls.append((temperature, params["seed"], [dict(m) for m in messages]))
            yield '```python\nprint("garden".upper())\n```'
            return
        yield from super().__call__(messages, temperature, **params)


def test_a_first_reply_no_sample_mends_is_sampled_again_with_the_general_pools_closest_examples(agent):
    agent.apply_prompt_variant(EXAMPLE_TURNS_GENERAL)
    agent.precheck_samples = 2
    model = ShownTheIdiom(['```python\nprint("Garden is a nice word.")\n```', "It is GARDEN."])
    agent.llm.completions = model
    new = agent.chat('Convert the word "garden" to upper case.', display=False)
    assert [seed for _, seed, _ in model.calls[:4]] == [None, 1, 2, 1]  # the fixed examples' samples, then the pool's
    assert FIXED_EXAMPLE in sent(model.calls[2]) and GENERAL_EXAMPLE not in sent(model.calls[2])
    assert GENERAL_EXAMPLE in sent(model.calls[3]) and FIXED_EXAMPLE not in sent(model.calls[3])
    assert 'Convert the word "garden" to upper case.' in sent(model.calls[3])[-1]
    assert not any("Garden is a nice word." in text for text in sent(model.calls[3]))  # the rejected reply is not sent
    assert code_run(new) == ['print("garden".upper())']  # the model's own code never ran
    assert [m["content"].strip() for m in new if m["type"] == "console"] == ["GARDEN"]


def test_when_the_pools_samples_do_not_mend_it_either_the_models_own_code_runs(agent):
    agent.apply_prompt_variant(EXAMPLE_TURNS_GENERAL)
    agent.precheck_samples = 2
    model = Sampled(["```python\nprint(answer)\n```", "```python\nprint(391)\n```", "It is 391."])
    agent.llm.completions = model
    new = agent.chat("What is 17 * 23?", display=False)
    assert [seed for _, seed, _ in model.calls[:6]] == [None, 1, 2, 1, 2, None]  # both rounds, then the repair
    assert code_run(new)[0] == "print(answer)"


def test_after_a_failure_no_reply_is_sampled_with_the_general_pool(agent):
    agent.apply_prompt_variant(EXAMPLE_TURNS_GENERAL)
    agent.precheck_samples = 2
    # the first code has no problem precheck can see, but fails; the repair reply has one, and no sample mends it
    model = Sampled(["```python\nprint(17 * 23 / 0)\n```", "```python\nprint(answer)\n```", "It is 391."])
    agent.llm.completions = model
    agent.chat("What is 17 * 23?", display=False)
    assert [seed for _, seed, _ in model.calls[:4]] == [None, None, 1, 2]
    general = {turns[0][1] for turns in GENERAL_POOL}
    assert not any(general & set(sent(call)) for call in model.calls)


def test_the_local_defaults_turn_the_checks_on():
    assert LOCAL_HARNESS["precheck_samples"] > 0 and LOCAL_HARNESS["check_answers"] and LOCAL_HARNESS["short_answers"]
    assert OpenInterpreter(conversation_history=False).precheck_samples == 0  # not for other models


def test_with_the_real_server_a_task_under_the_local_defaults_repeats_exactly(llama_server, tmp_path, monkeypatch):
    """The sampled replies are seeded: the same task gives the same conversation twice (the bench relies on it),
    and no code the precheck rejected for a better sample is in it."""
    from oi_local.endpoint import Endpoint

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.txt").write_text("".join(f"row {i}\n" for i in range(1, 8)))
    interpreter = OpenInterpreter(conversation_history=False, auto_run=True)
    interpreter.configure_for(Endpoint(llama_server.base_url, llama_server.model_id, llama_server.api_key, 2048, 160,
                                       "custom"))
    assert interpreter.precheck_samples == LOCAL_HARNESS["precheck_samples"] and interpreter.short_answers
    try:
        runs = []
        for _ in range(2):
            interpreter.messages = []
            new = interpreter.chat("How many lines are in the file data.txt?", display=False)
            # the kernel numbers its cells on: "Cell In[4]" the second time is the same traceback
            runs.append([(m["role"], m["type"], re.sub(r"Cell In\[\d+\]", "Cell In[N]", str(m["content"]))) for m in new])
        assert runs[0] == runs[1]
        assert (tmp_path / "data.txt").read_text().startswith("row 1\n")  # read, never written over
    finally:
        interpreter.computer.terminate()
