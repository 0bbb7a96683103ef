"""The general pool of worked examples (agent/general_examples.py): what each example says its code prints is
what that code prints in the agent's own kernel, each example stays in the plain style a small model copies,
and no example holds a bench task's values."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import computer_support
from computer_support import text

from oi_local.agent.examples import ANSWER_PROMPT
from oi_local.agent.general_examples import GENERAL_POOL

computer = computer_support.computer
scratch = computer_support.scratch

# The files (name: content; a name ending in / is a folder) that an example's request says are there.
FILES_THERE = {
    "List the .csv files in this folder.": {"sales.csv": "a,b\n", "stock.csv": "c,d\n", "readme.md": "hi\n"},
    "Show the contents of soup.txt.": {"soup.txt": "2 carrots\n1 onion\n1 litre of water\n"},
    "What is the first line of guests.txt?": {"guests.txt": "Anna\nBen\nCarla\n"},
    "What is the last line of diary.txt?": {"diary.txt": "Woke up late.\nHad pancakes.\nWent to bed early.\n"},
    "How many lines are in tasks.txt?": {"tasks.txt": "shop\ncook\nclean\nread\nsleep\n"},
    "How many words are in essay.txt?": {"essay.txt": "The sea is blue.\nThe sky is blue as well.\n"},
    'Does the file minutes.txt mention "budget"?': {"minutes.txt": "We talked about the budget for May.\n"},
    "Show line 3 of songs.txt.": {"songs.txt": "Yesterday\nHey Jude\nYellow Submarine\nHelp\n"},
    'Add the line "call mom" to the end of chores.txt.': {"chores.txt": "wash dishes\n"},
    "Copy invoice.pdf to invoice_copy.pdf.": {"invoice.pdf": "%PDF-1.4\n"},
    "Rename letter_v1.txt to letter_final.txt.": {"letter_v1.txt": "Dear Sir,\n"},
    "Delete the file old_notes.txt.": {"old_notes.txt": "old\n", "cat.jpg": "jpg"},
    "How many files are in the folder downloads?": {"downloads/a.zip": "z", "downloads/b.mp3": "m",
                                                    "downloads/c.png": "p"},
    "What is in the folder vacation?": {"vacation/beach.jpg": "j", "vacation/hotel.jpg": "j"},
    "Delete the empty folder scratch.": {"scratch/": ""},
    "Move tax_form.pdf into the folder paperwork.": {"tax_form.pdf": "pdf", "paperwork/": ""},
}
# What these print depends on the machine: they must run, and print something.
MACHINE_DEPENDENT = {"What folder am I in?", "What is my user name?", "What is today's date?", "What time is it?",
                     "What is the value of the HOME environment variable?", "How much free disk space is there?"}
NOT_IN_THE_STYLE = (ast.With, ast.FunctionDef, ast.Lambda, ast.ListComp, ast.GeneratorExp, ast.Try, ast.Import,
                    ast.ImportFrom)


def parts(example) -> tuple[str, str, str]:
    """(request, code, stated output) of a worked example."""
    request, reply, output_turn, _answer = (content for _, content in example)
    code = reply.removeprefix("```python\n").removesuffix("\n```")
    return request, code, output_turn.removeprefix("Output: ").removesuffix(f"\n\n{ANSWER_PROMPT}")


def same_output(printed: str, stated: str) -> bool:
    if printed == stated:
        return True
    try:  # a printed folder listing: its order is the file system's
        return sorted(ast.literal_eval(printed)) == sorted(ast.literal_eval(stated))
    except (ValueError, SyntaxError, TypeError):
        return False


def test_every_example_prints_what_it_says_in_the_agents_kernel(computer, scratch):
    wrong = []
    for index, example in enumerate(GENERAL_POOL):
        request, code, stated = parts(example)
        folder = scratch / f"example-{index}"
        folder.mkdir()
        for name, content in FILES_THERE.get(request, {}).items():
            target = folder / name
            if name.endswith("/"):
                target.mkdir(parents=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
        computer.run("python", f"os.chdir({str(folder)!r})")
        printed = text(computer.run("python", code)).rstrip("\n")
        if "Traceback" in printed or not printed or (request not in MACHINE_DEPENDENT and not same_output(printed, stated)):
            wrong.append((request, stated, printed))
    assert wrong == []


def test_every_example_is_short_plain_python_that_prints():
    for example in GENERAL_POOL:
        request, code, _ = parts(example)
        assert len(code.splitlines()) <= 3 and "print(" in code, request
        assert not [node for node in ast.walk(ast.parse(code)) if isinstance(node, NOT_IN_THE_STYLE)], request
    requests = [parts(example)[0] for example in GENERAL_POOL]
    assert len(set(requests)) == len(requests) >= 30


def test_no_example_holds_a_bench_tasks_file_name_or_quoted_text():
    bench = Path(__file__).resolve().parents[1] / "bench"
    sys.path.insert(0, str(bench))
    try:
        suites = [__import__(name).TASKS for name in ("tasks", "tasks_untuned", "tasks_fresh")]
    finally:
        sys.path.remove(str(bench))
    marks = re.compile(r'"[^"]+"|[\w/-]+\.[A-Za-z]{1,4}\b')
    for task in (task for suite in suites for task in suite):
        named = set(marks.findall(task.prompt)) | set(task.files)
        for example in GENERAL_POOL:
            request, code, _ = parts(example)
            assert request != task.prompt
            assert not named & set(marks.findall(request + " " + code)), (task.name, request)

