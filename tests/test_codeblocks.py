"""The streaming fence parser: exact results on hard cases, independence from chunking (a property test over
real replies recorded from the test model and hand-written ones), and Open Interpreter's known parser faults."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oi_local.agent import codeblocks
from oi_local.agent.codeblocks import FenceParser, assemble, canonical_language, parse

REPLIES = Path(__file__).parent / "fixtures" / "replies"


def msg(text):
    return {"role": "assistant", "type": "message", "content": text}


def code(language, text):
    return {"role": "assistant", "type": "code", "format": language, "content": text}


HARD_CASES = {
    "text only": ("Just an answer, no code.", [msg("Just an answer, no code.")]),
    "one block with text around": (
        "Let me compute it.\n```python\nprint(17 * 23)\n```\nThe answer is 391.",
        [msg("Let me compute it."), code("python", "print(17 * 23)"), msg("The answer is 391.")],
    ),
    "several blocks run in order": (
        "First:\n```bash\nls\n```\nThen:\n```py\nx = 1\nprint(x)\n```\n```js\nconsole.log(2)\n```\nDone",
        [msg("First:"), code("shell", "ls"), msg("Then:"), code("python", "x = 1\nprint(x)"),
         code("javascript", "console.log(2)"), msg("Done")],
    ),
    "language name inside the code (OI corrupted this)": (
        "```sh\ngit push origin sh\necho sh\n```",
        [code("shell", "git push origin sh\necho sh")],
    ),
    "python inside python": (
        "```python\n# python is great\nprint('python')\n```",
        [code("python", "# python is great\nprint('python')")],
    ),
    "inline backticks stay text": (
        "Use `ls -la` or ``a`b`` and ```not a fence``` here.",
        [msg("Use `ls -la` or ``a`b`` and ```not a fence``` here.")],
    ),
    "backticks inside code": (
        "```bash\necho `date`\nx=``\nprint('```')\n```",
        [code("shell", "echo `date`\nx=``\nprint('```')")],
    ),
    "reply ends inside a block": (
        "Here:\n```python\nfor i in range(3):\n    print(i)",
        [msg("Here:"), code("python", "for i in range(3):\n    print(i)")],
    ),
    "reply ends right after the closing fence": ("```python\nprint(1)\n```", [code("python", "print(1)")]),
    "closing fence at the end of a code line": (
        "```python\nprint(1)```\nok",
        [code("python", "print(1)"), msg("ok")],
    ),
    "fence after text on the same line": (
        "Run this: ```bash\nls -la\n```",
        [msg("Run this:"), code("shell", "ls -la")],
    ),
    "untagged fence, shell command": ("```\nls -la\n```", [code("shell", "ls -la")]),
    "untagged fence, python": ("```\nimport os\nprint(os.getcwd())\n```", [code("python", "import os\nprint(os.getcwd())")]),
    "data fence is not code": (
        "Output:\n```text\n391\n```\nSo 391.",
        [msg("Output:\n```text\n391\n```\nSo 391.")],
    ),
    "indented fence": ("1. Do:\n   ```shell\n   pwd\n   ```\n", [msg("1. Do:"), code("shell", "   pwd")]),
    "longer fence holds a shorter one": (
        "````markdown\n```python\nx\n```\n````",
        [msg("````markdown\n```python\nx\n```\n````")],
    ),
    "longer code fence": ("````python\nprint('```')\n```\n````", [code("python", "print('```')\n```")]),
    "blank lines around code are not code": ("```python\n\nprint(1)\n\n```", [code("python", "print(1)")]),
    "tag with attributes and capitals": ("```Python title=x.py\nprint(1)\n```", [code("python", "print(1)")]),
    "all the aliases": (
        "".join(f"```{tag}\nx\n```\n" for tag in ["python3", "zsh", "node", "html", "r", "applescript", "powershell"]),
        [code(lang, "x") for lang in ["python", "shell", "javascript", "html", "r", "applescript", "powershell"]],
    ),
    "unknown language kept as its name": ("```ruby\nputs 1\n```", [code("ruby", "puts 1")]),
    "empty block produces nothing": ("```python\n```\nnothing", [msg("nothing")]),
    "reply ends with an opening fence": ("Here it comes ```python", [msg("Here it comes ```python")]),
    "two backticks at a line start": ("``not``\ntext", [msg("``not``\ntext")]),
    "unicode": ("Résultat :\n```python\nprint('héllo ✓')\n```", [msg("Résultat :"), code("python", "print('héllo ✓')")]),
}


@pytest.mark.parametrize("name", list(HARD_CASES))
def test_hard_cases_parse_exactly(name):
    reply, expected = HARD_CASES[name]
    assert parse(reply) == expected


def test_aliases():
    for tag, language in {"py": "python", "python3": "python", "sh": "shell", "bash": "shell", "zsh": "shell",
                          "shell": "shell", "js": "javascript", "javascript": "javascript", "node": "javascript",
                          "html": "html", "r": "r", "applescript": "applescript", "powershell": "powershell"}.items():
        assert canonical_language(tag) == language


def recorded_replies() -> list[str]:
    return [path.read_text(encoding="utf-8") for path in sorted(REPLIES.glob("*.txt"))]


def test_recorded_replies_are_there_and_have_code():
    replies = recorded_replies()
    assert len(replies) >= 10
    assert sum(any(m["type"] == "code" for m in parse(r)) for r in replies) >= 8


ALL_REPLIES = recorded_replies() + [reply for reply, _ in HARD_CASES.values()]


def feed_in_pieces(reply: str, cuts: list[int]) -> list[dict]:
    parser = FenceParser()
    chunks: list[dict] = []
    previous = 0
    for cut in sorted(set(cuts)) + [len(reply)]:
        chunks += parser.feed(reply[previous:cut])
        previous = cut
    return chunks + parser.finish()


def well_formed(chunks: list[dict]) -> bool:
    """Every message is start, one or more non-empty contents, end; nothing outside a message."""
    open_kind = None
    for chunk in chunks:
        kind = (chunk["type"], chunk.get("format"))
        if chunk.get("start"):
            if open_kind is not None:
                return False
            open_kind, seen = kind, 0
        elif chunk.get("end"):
            if open_kind != kind or seen == 0:
                return False
            open_kind = None
        else:
            if open_kind != kind or not chunk["content"]:
                return False
            seen += 1
    return open_kind is None


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_split_gives_the_same_messages(data):
    reply = data.draw(st.sampled_from(ALL_REPLIES))
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(reply)), max_size=40))
    chunks = feed_in_pieces(reply, cuts)
    assert well_formed(chunks)
    assert assemble(chunks) == parse(reply)


@pytest.mark.parametrize("index", range(len(ALL_REPLIES)))
def test_character_by_character_equals_whole(index):
    reply = ALL_REPLIES[index]
    assert assemble(feed_in_pieces(reply, list(range(len(reply))))) == parse(reply)


# -- Open Interpreter's known faults ------------------------------------------------------------------


def test_regression_language_name_inside_code_is_not_removed():
    reply = "```sh\ngit push\n```"
    for cuts in ([], [3, 5], list(range(len(reply)))):
        assert assemble(feed_in_pieces(reply, cuts)) == [code("shell", "git push")]


def test_regression_chunks_ending_in_a_backtick_are_not_dropped():
    pieces = ["```py", "thon\nx = `", "`", "\nprint('a`", "')\n`", "``", "\nok`", "`"]
    parser = FenceParser()
    chunks = [c for piece in pieces for c in parser.feed(piece)] + parser.finish()
    assert assemble(chunks) == [code("python", "x = ``\nprint('a`')"), msg("ok``")]


def test_regression_every_block_is_kept_not_only_the_first():
    reply = "```python\na = 1\n```\n```python\nb = 2\n```\n```shell\necho 3\n```"
    parser = FenceParser()
    assemble(parser.feed(reply) + parser.finish())
    assert parser.blocks == [("python", "a = 1"), ("python", "b = 2"), ("shell", "echo 3")]


# -- lenient reading: every fence CommonMark allows, CR LF, pasted prompts (issue 10 point 6) -----------

LENIENT_CASES = {
    "tilde fence": ("~~~python\nprint(1)\n~~~\nok", [code("python", "print(1)"), msg("ok")]),
    "longer closing run of tildes": ("~~~\nls\n~~~~~\ndone", [code("shell", "ls"), msg("done")]),
    "a shorter closing run is code": ("~~~~\nls\n~~~\n~~~~", [code("shell", "ls\n~~~")]),
    "backticks inside a tilde block": ("~~~python\nprint('```')\n```\n~~~", [code("python", "print('```')\n```")]),
    "tildes inside a backtick block": ("```python\nprint('~~~')\n~~~\n```", [code("python", "print('~~~')\n~~~")]),
    "tilde data fence is not code": ("~~~text\n391\n~~~\nSo 391.", [msg("~~~text\n391\n~~~\nSo 391.")]),
    "CR LF line ends": (
        "Here:\r\n```python\r\nx = 1\r\nprint(x)\r\n```\r\nThe answer.\r\n",
        [msg("Here:"), code("python", "x = 1\nprint(x)"), msg("The answer.")],
    ),
    "space between fence and language": ("``` python\nprint(2)\n```", [code("python", "print(2)")]),
    "space after a fence after text": ("Run this: ``` python\nprint(3)\n```", [msg("Run this:"), code("python", "print(3)")]),
    "fence inside a numbered list item": (
        "1. ```python\n   print(4)\n   ```\n2. done",
        [msg("1."), code("python", "   print(4)"), msg("2. done")],
    ),
    "tilde fence inside a bullet": ("- ~~~shell\n  ls\n  ~~~", [msg("-"), code("shell", "  ls")]),
    "fence indented three spaces": ("   ```python\n   print(5)\n   ```", [code("python", "   print(5)")]),
    "tildes in text stay text": ("about ~5 minutes ~~~ or so", [msg("about ~5 minutes ~~~ or so")]),
    "dollar prompt before a shell command": ("```bash\n$ ls -la\n```", [code("shell", "ls -la")]),
    "untagged block with a dollar prompt is shell": ("```\n$ pwd\n```", [code("shell", "pwd")]),
    "shell session: output lines dropped": (
        "```console\n$ ls\nnotes.txt\ndata.txt\n$ wc -l notes.txt\n3 notes.txt\n```",
        [code("shell", "ls\nwc -l notes.txt")],
    ),
    "python session with continuation lines": (
        "```python\n>>> import math\n>>> for i in range(2):\n...     print(i)\n...\n0\n1\n>>> math.sqrt(4)\n2.0\n```",
        [code("python", "import math\nfor i in range(2):\n    print(i)\n\nmath.sqrt(4)")],
    ),
    "untagged python session": ("```\n>>> 17 * 23\n391\n```", [code("python", "17 * 23")]),
    "a prompt on a later line only loses the prompt": (
        "```python\nimport os\n>>> print(os.getcwd())\n```",
        [code("python", "import os\nprint(os.getcwd())")],
    ),
    "ellipsis in ordinary code is kept": ("```python\ndef f():\n    ...\n...\n```", [code("python", "def f():\n    ...\n...")]),
    "dollar inside a command is kept": ("```shell\necho $HOME\nx=$ y\n```", [code("shell", "echo $HOME\nx=$ y")]),
}


@pytest.mark.parametrize("name", list(LENIENT_CASES))
def test_lenient_cases_parse_as_a_person_reads_them(name):
    reply, expected = LENIENT_CASES[name]
    assert parse(reply) == expected


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_lenient_cases_give_the_same_messages_for_any_split(data):
    reply = data.draw(st.sampled_from([reply for reply, _ in LENIENT_CASES.values()]))
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(reply)), max_size=40))
    chunks = feed_in_pieces(reply, cuts)
    assert well_formed(chunks)
    assert assemble(chunks) == parse(reply)


@pytest.mark.parametrize("name", list(LENIENT_CASES))
def test_lenient_cases_character_by_character(name):
    reply, expected = LENIENT_CASES[name]
    assert assemble(feed_in_pieces(reply, list(range(len(reply))))) == expected


def test_a_carriage_return_split_from_its_line_feed_is_one_line_end():
    parser = FenceParser()
    chunks = parser.feed("```python\r") + parser.feed("\nprint(1)\r") + parser.feed("\n```\r") + parser.finish()
    assert assemble(chunks) == [code("python", "print(1)")]
    assert parser.blocks == [("python", "print(1)")]


def test_session_blocks_record_the_code_without_prompts():
    parser = FenceParser()
    assemble(parser.feed("```shell\n$ echo hi\nhi\n```") + parser.finish())
    assert parser.blocks == [("shell", "echo hi")]


@pytest.mark.parametrize(("code", "is_python"), [
    ("print(len(os.listdir()))", True),
    ("# the files\nimport os\nprint(os.listdir())", True),
    ('with open("a.txt") as f:\n    print(f.read())', True),
    ("ls", False),  # parses as Python, but a command
    ("whoami", False),  # parses as Python and names nothing it does
    ("ls -la | wc -l", False),
    ('find . -name "*.log"', False),
    ("echo hi", False),
    ("x=5", False),  # a shell assignment as much as a Python one
    ('for f in *.log; do echo "$f"; done', False),
])
def test_python_in_a_block_tagged_shell_is_told_from_a_script(code, is_python):
    assert codeblocks.python_in_shell(code) is is_python
