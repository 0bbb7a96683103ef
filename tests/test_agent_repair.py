"""Repair turns: reading failures out of real outputs, the request sent to the model, and the agent's loop
with scripted replies (the seed's `llm.completions` hook) running code in a real IPython kernel."""

from __future__ import annotations

import subprocess
import sys

from oi_local.agent import repair
from oi_local.agent.templates import REPAIR_TEMPLATES
from oi_local.computer import Computer


def run_output(language: str, code: str) -> str:
    computer = Computer()
    try:
        return "".join(m["content"] for m in computer.run(language, code) if isinstance(m.get("content"), str))
    finally:
        computer.terminate()


# -- reading failures ------------------------------------------------------------------------------------


def test_a_name_error_in_the_kernel_names_its_line():
    code = "x = 1\nprint(mathx.sqrt(4))"
    failure = repair.diagnose("python", code, run_output("python", code))
    assert failure == repair.Failure("python", "NameError", "name 'mathx' is not defined", 2, "print(mathx.sqrt(4))")


def test_an_error_inside_a_function_names_the_cells_innermost_line():
    code = "def f():\n    return open('nope.txt').read()\nprint(f())"
    failure = repair.diagnose("python", code, run_output("python", code))
    assert failure.kind == "FileNotFoundError" and "nope.txt" in failure.message
    assert (failure.line_number, failure.line) == (2, "return open('nope.txt').read()")


def test_syntax_errors_and_subprocess_tracebacks_are_read_too():
    failure = repair.diagnose("python", "print(1\n", run_output("python", "print(1\n"))
    assert failure.kind == "SyntaxError" and failure.line_number == 1
    code = "a = 2\nb = a.upper_case()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    failure = repair.diagnose("python", code, done.stdout + done.stderr)
    assert (failure.kind, failure.line_number) == ("AttributeError", 2)


def test_shell_failures_exit_codes_and_error_output():
    failure = repair.diagnose("shell", "ls nope", run_output("shell", "ls nope"))
    assert failure.kind == "exit code 2" and "No such file or directory" in failure.message
    assert failure.line == "ls nope"
    failure = repair.diagnose("shell", "echo a\nfoo_cmd 1", run_output("shell", "echo a\nfoo_cmd 1"))
    assert failure.kind == "exit code 127" and failure.message == "foo_cmd: command not found"
    assert (failure.line_number, failure.line) == (2, "foo_cmd 1")
    failure = repair.diagnose("shell", "cat missing.txt | wc -l", run_output("shell", "cat missing.txt | wc -l"))
    assert failure.kind == "error output" and "missing.txt" in failure.message


def test_what_worked_is_not_a_failure():
    assert repair.diagnose("python", "print('ValueError: made up')", "ValueError: made up\n") is None
    assert repair.diagnose("python", "raise SystemExit(0)", run_output("python", "raise SystemExit(0)")) is None
    assert repair.diagnose("shell", "echo hi", "hi\n") is None
    assert repair.diagnose("python", "x = 1", "") is None


# -- the request -------------------------------------------------------------------------------------------


def test_hints_follow_from_the_error_alone(tmp_path):
    assert repair.hint(repair.Failure("python", "NameError", "name 'math' is not defined")) == "Add `import math` at the top."
    assert "`.upper()`" in repair.hint(repair.Failure("python", "NameError", "name 'upper_case' is not defined"))
    assert "`.upper()`" in repair.hint(repair.Failure("python", "AttributeError", "'str' object has no attribute 'upper_case'"))
    assert "`print`" in repair.hint(repair.Failure("python", "NameError", "name 'pritn' is not defined"))
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "data").mkdir()
    listed = repair.hint(repair.Failure("python", "FileNotFoundError", "[Errno 2] No such file or directory: 'note.txt'"), tmp_path)
    assert listed == "The current folder has: data/, notes.txt."
    assert "not a command" in repair.hint(repair.Failure("shell", "exit code 127", "foo_cmd: command not found"))


def test_a_made_up_name_where_the_task_names_a_file_gets_the_line_that_reads_or_writes_it(tmp_path):
    (tmp_path / "data.txt").write_text("row 1\n")
    data = repair.hint(repair.Failure("python", "NameError", "name 'data' is not defined"), tmp_path,
                       "How many lines are in the file data.txt?")
    assert 'print(open("data.txt").read())' in data and "```python" in data
    # the stem alone finds it too, when the task names no file
    assert "data.txt" in repair.hint(repair.Failure("python", "NameError", "name 'data' is not defined"), tmp_path)
    write = repair.hint(repair.Failure("python", "NameError", "name 'filename' is not defined"), tmp_path,
                        "Save the numbers 1 to 5 in a file named out.txt.")
    assert 'with open("out.txt", "w") as f:' in write
    # a name far from every built-in gets no far-fetched "did you mean"
    assert "did you mean" not in repair.hint(repair.Failure("python", "NameError", "name 'note' is not defined"), tmp_path)
    assert repair.creation_code(["reports", "notes.md"]) == (
        'os.makedirs("reports", exist_ok=True)\nwith open("notes.md", "w") as f:\n    f.write("...")')


def test_the_request_quotes_the_output_and_names_the_error_and_line():
    failure = repair.Failure("python", "NameError", "name 'math' is not defined", 1, "print(math.sqrt(2))")
    text = repair.request(failure, "Traceback ...\nNameError: name 'math' is not defined\n", REPAIR_TEMPLATES["failed"])
    assert text.startswith("Output: Traceback ...\nNameError: name 'math' is not defined\n\n")
    assert "The code failed with NameError: name 'math' is not defined (line 1: `print(math.sqrt(2))`)." in text
    assert "import math" in text and text.endswith("Reply with the corrected code in one code block.")


def test_restating_the_error_is_told_from_an_answer():
    failure = repair.Failure("python", "NameError", "name 'math' is not defined", 1, "print(math.sqrt(2))")
    assert repair.restates("NameError: name 'math' is not defined", failure)
    assert repair.restates("It seems that math is not defined in your code.", failure)
    assert not repair.restates("The square root of 2 is about 1.41.", failure)


def test_the_files_a_task_asks_for():
    assert repair.asked_paths("Create a file named hello.txt containing the text hello world.") == ["hello.txt"]
    assert repair.asked_paths("Create a folder named reports in the current directory.") == ["reports"]
    assert repair.asked_paths("Print the contents of the file notes.txt.") == []
    assert repair.asked_paths("What is 1.5 * 2?") == []


def test_missing_paths_look_below_the_folder_too(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("")
    assert repair.missing_paths("Make a folder named src with a file called main.py in it", tmp_path) == []
    assert repair.missing_paths("Write the list to a file named out.txt", tmp_path) == ["out.txt"]


# -- the loop ----------------------------------------------------------------------------------------------


class Scripted:
    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.requests: list[list[dict]] = []

    def __call__(self, messages, **params):
        self.requests.append([dict(m) for m in messages])
        yield self.replies.pop(0) if self.replies else "Done."


def script(agent, *replies):
    scripted = Scripted(*replies)
    agent.llm.completions = scripted
    return scripted


def test_a_failed_run_gets_a_repair_request_and_the_fix_runs(agent):
    agent.computer.run("python", "import builtins\ndel builtins.math, builtins")  # as without the preloaded module
    scripted = script(agent, "```python\nprint(math.sqrt(144))\n```", "```python\nimport math\nprint(math.sqrt(144))\n```",
                      "The square root of 144 is 12.")
    new = agent.chat("What is the square root of 144?", display=False)
    second = scripted.requests[1][-1]
    assert second["role"] == "user" and "NameError: name 'math' is not defined" in second["content"]
    assert "(line 1: `print(math.sqrt(144))`)" in second["content"] and "import math" in second["content"]
    assert "Using this output" not in second["content"]  # the plain output template is not sent as well
    outputs = [m["content"] for m in new if m["type"] == "console"]
    assert outputs[-1].strip() == "12.0"
    assert new[-1] == {"role": "assistant", "type": "message", "content": "The square root of 144 is 12."}
    assert [m for m in new if m.get("format") == "repair"][0]["role"] == "computer"


def test_no_more_than_max_repairs_requests(agent):
    agent.max_repairs = 1
    failing = "```python\nraise ValueError('nope %d' % {n})\n```"
    scripted = script(agent, failing.format(n=1), failing.format(n=2), "It failed twice.")
    agent.chat("go", display=False)
    assert len(scripted.requests) == 3
    assert "The code failed with ValueError" in scripted.requests[1][-1]["content"]
    assert "The code failed" not in scripted.requests[2][-1]["content"]  # the budget is spent: plain output


def test_a_reply_that_only_restates_the_error_does_not_end_the_turn(agent):
    scripted = script(agent, "```python\nprint(undefined_thing)\n```", "NameError: name 'undefined_thing' is not defined",
                      "```python\nprint('fixed')\n```", "It printed fixed.")
    new = agent.chat("go", display=False)
    assert len(scripted.requests) == 4
    assert "Do not repeat the error" in scripted.requests[2][-1]["content"]
    assert new[-1]["content"] == "It printed fixed."


def test_repeating_the_failed_code_is_not_run_again_but_repaired(agent):
    agent.stop_on_repeated_code = True
    failing = "```python\nprint(undefined_thing)\n```"
    scripted = script(agent, failing, failing, "```python\nprint(2)\n```", "Two.")
    new = agent.chat("go", display=False)
    assert "already failed" in scripted.requests[2][-1]["content"]
    assert len([m for m in new if m["type"] == "console"]) == 2


def test_without_repairs_the_turn_goes_on_as_before(agent):
    agent.max_repairs = 0
    scripted = script(agent, "```python\nprint(undefined_thing)\n```", "NameError again.")
    agent.chat("go", display=False)
    assert len(scripted.requests) == 2
    assert not [m for m in agent.messages if m.get("format") == "repair"]


def test_a_file_the_task_asked_for_is_checked(agent, tmp_path):
    agent.check_asked_files = True
    scripted = script(agent, "Here is the text: hello world", "```python\nopen('hello.txt', 'w').write('hello world')\n```",
                      "I wrote hello.txt.")
    agent.chat("Create a file named hello.txt containing the text hello world.", display=False)
    assert scripted.requests[1][-1]["content"] == REPAIR_TEMPLATES["missing"].replace("{content}", "hello.txt").replace(
        "{code}", 'with open("hello.txt", "w") as f:\n    f.write("...")')
    assert (tmp_path / "hello.txt").read_text() == "hello world"
    assert len(scripted.requests) == 3  # asked once; the file is there, so the answer ends the turn


def test_a_repair_request_in_a_saved_conversation_reads_the_same(agent):
    from oi_local.agent import messages as lmc

    script(agent, "```python\nprint(undefined_thing)\n```", "```python\nprint(1)\n```", "One.")
    agent.chat("go", display=False)
    sent = lmc.to_llm_messages(agent.messages, "", agent.templates())
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant", "user", "assistant"]
    assert sent[2]["content"].startswith("Output: Traceback")


def test_a_restarting_repair_shows_the_task_again_with_the_error_not_the_failed_code(agent):
    agent.repair_restart = True
    scripted = script(agent, "```python\nprint(undefined_thing)\n```", "```python\nprint(2)\n```", "Two.")
    agent.chat("Print two.", display=False)
    again = scripted.requests[1]
    assert again[-1]["role"] == "user" and again[-1]["content"].startswith("Print two.\n\n(The code failed with NameError")
    assert "print(undefined_thing)" not in str(again[1:])  # neither the failed code nor its output
    assert [m["role"] for m in again] == ["system", "user"]


def test_repair_replies_can_be_sampled_with_a_seed_per_attempt(agent):
    agent.repair_temperature = 0.7
    seen = []

    def completions(messages, temperature, **params):
        seen.append((temperature, params.get("seed")))
        yield "```python\nprint(undefined_thing)\n```" if len(seen) < 3 else "Gave up."

    agent.llm.completions = completions
    agent.chat("go", display=False)
    assert seen[:3] == [(0.0, None), (0.7, 1), (0.7, 2)]


def test_once_a_restarted_task_works_the_model_reads_it_without_the_note(agent):
    agent.repair_restart = True
    scripted = script(agent, "```python\nprint(undefined_thing)\n```", "```python\nprint(2)\n```", "Two.")
    agent.chat("Print two.", display=False)
    answer_request = scripted.requests[2]
    assert answer_request[1]["content"].startswith("Print two.") and "failed" not in answer_request[1]["content"]
    assert answer_request[2] == {"role": "assistant", "content": "```python\nprint(2)\n```"}
