"""Worked examples chosen for the task at hand: from a pool of examples (one or two per kind of task), the ones
whose request shares the most words with the user's task, the closest last (a small model follows the
example nearest to the task most).
"""

from __future__ import annotations

import re

Turns = tuple[tuple[str, str], ...]  # (role, content) messages of one worked example

ANSWER_PROMPT = "Using this output, answer my question in one short sentence."


def worked_example(task: str, language: str, code: str, output: str, answer: str) -> Turns:
    """A worked example as conversation turns: the task, the code, its output, the answer."""
    return (("user", task), ("assistant", f"```{language}\n{code}\n```"),
            ("user", f"Output: {output}\n\n{ANSWER_PROMPT}"), ("assistant", answer))

_WORD = re.compile(r"[a-z0-9]+")
_COMMON = frozenset(
    "a an the is are was be of in on to for from with and or it its this that these those what which how many "
    "much me my i you your please can could would use using there here do does did all any some".split()
)


# Words that ask for the same thing.
_SAME = {"directory": "folder", "dir": "folder", "make": "create", "list": "show", "display": "show"}


def _words(text: str) -> list[str]:
    found = []
    for word in _WORD.findall(text.lower()):
        if word in _COMMON:
            continue
        word = word[:-1] if len(word) > 3 and word.endswith("s") else word  # files -> file
        found.append(_SAME.get(word, word))
    return found


def words(text: str) -> set[str]:
    return set(_words(text))


def _score(task: list[str], request: list[str]) -> int:
    """Shared words, and one more when both start with the same word (a request's verb says what it wants)."""
    shared = len(set(task) & set(request))
    return shared + (1 if task and request and task[0] == request[0] else 0)


def select(pool: tuple[Turns, ...], task: str, count: int) -> list[dict]:
    """The `count` examples of `pool` closest to `task` (ties: pool order), as messages, the closest last."""
    if not pool or count <= 0:
        return []
    wanted = _words(task)
    scored = []
    for index, example in enumerate(pool):
        request = example[0][1] if example else ""
        scored.append((_score(wanted, _words(request)), -index, example))
    best = sorted(scored, key=lambda item: (item[0], item[1]), reverse=True)[:count]
    return [{"role": role, "content": content} for _, _, example in reversed(best) for role, content in example]
