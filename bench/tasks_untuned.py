"""The held-out task suite: tasks of the same kinds as bench/tasks.py, never tuned on.

Written before any tuning of the harness and not changed after its first results (issue 10: "the default
chosen must win on the suite you did not tune on"). Same rules as bench/tasks.py: a task is done when the
expected text appears in the output of code the agent really ran (or the named file or folder exists and
holds the text); answered when the model's last message also contains it.
"""

from __future__ import annotations

from tasks import BenchTask

TASKS: list[BenchTask] = [
    BenchTask("product", "arithmetic", "What is 45 * 12?", "540"),
    BenchTask("cube", "arithmetic", "What is 3 to the power of 5?", "243"),
    BenchTask("square-root", "arithmetic", "What is the square root of 144?", "12"),
    BenchTask("reverse", "strings", 'Reverse the string "drawer".', "reward"),
    BenchTask("upper", "strings", 'Convert the word "python" to upper case.', "PYTHON"),
    BenchTask("count-letter", "strings", 'How many times does the letter s appear in "mississippi"?', "4"),
    BenchTask("print-dir", "shell", "Use the shell to show the current working directory.", "oi-bench-print-dir"),
    BenchTask("find-logs", "shell", "Use a shell command to find the files ending in .log in the current directory.",
              "c.log", files={"a.txt": "a\n", "b.txt": "b\n", "c.log": "c\n"}),
    BenchTask("first-line", "reading", "What is the first line of the file poem.txt?", "Roses are red",
              files={"poem.txt": "Roses are red\nViolets are blue\nSugar is sweet\n"}),
    BenchTask("count-words", "reading", "How many words are in the file words.txt?", "6",
              files={"words.txt": "apple banana cherry grape lemon mango\n"}),
    BenchTask("write-greeting", "writing", "Write the text good morning into a file called greeting.txt.",
              "good morning", check_file=("greeting.txt", "good morning")),
    BenchTask("write-numbers", "writing", "Save the numbers 1 to 5, one per line, in a file named numbers.txt.",
              "numbers.txt", check_file=("numbers.txt", "3\n4")),
    BenchTask("new-folder", "folders", "Make a new directory called archive.", "archive",
              check_file=("archive", "")),
    BenchTask("count-in-folder", "folders", "How many files are in the folder docs?", "4",
              files={"docs/a.txt": "a\n", "docs/b.txt": "b\n", "docs/c.txt": "c\n", "docs/d.txt": "d\n"}),
    BenchTask("file-in-folder", "folders", "Create a folder named src and inside it an empty file called main.py.",
              "main.py", check_file=("src/main.py", "")),
]
