"""The bench task suite for the agent: small tasks a local model should be able to do by running code.

A task succeeds when the expected text appears in the output of code the agent really ran (or, for tasks
that write files, when the file holds the expected text afterwards). `answered` additionally asks that the
model's final message contains the expected text.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BenchTask:
    name: str
    kind: str  # arithmetic | strings | shell | reading | files (writing) | folders
    prompt: str
    expect: str
    files: dict[str, str] = field(default_factory=dict)  # created in the task's empty folder first
    check_file: tuple[str, str] | None = None  # (name, text it must contain) after the run


TASKS: list[BenchTask] = [
    BenchTask("multiply", "arithmetic", "What is 17 * 23?", "391"),
    BenchTask("power", "arithmetic", "What is 2 to the power of 10?", "1024"),
    BenchTask("sum-range", "arithmetic", "What is the sum of the whole numbers from 1 to 100?", "5050"),
    BenchTask("divide", "arithmetic", "What is 156 divided by 12?", "13"),
    BenchTask("string-length", "arithmetic", 'How many characters are in the string "open interpreter"?', "16"),
    BenchTask("list-files", "shell", "List the files in the current directory.", "alpha.txt",
              files={"alpha.txt": "a\n", "beta.txt": "b\n"}),
    BenchTask("echo", "shell", "Use the shell to print the word banana.", "banana"),
    BenchTask("count-files", "shell", "How many files are in the current directory?", "3",
              files={"one.txt": "1\n", "two.txt": "2\n", "three.txt": "3\n"}),
    BenchTask("read-file", "reading", "Print the contents of the file notes.txt.", "pineapple",
              files={"notes.txt": "The secret word is pineapple.\n"}),
    BenchTask("count-lines", "reading", "How many lines are in the file data.txt?", "7",
              files={"data.txt": "".join(f"row {i}\n" for i in range(1, 8))}),
    BenchTask("write-file", "files", "Create a file named hello.txt containing the text hello world.", "hello world",
              check_file=("hello.txt", "hello world")),
    BenchTask("make-folder", "files", "Create a folder named reports in the current directory.", "reports",
              check_file=("reports", "")),
]
