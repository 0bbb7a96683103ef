"""System messages and message templates: Open Interpreter's defaults, and the variants for small local models.

The local default (LOCAL_DEFAULT) was chosen by bench/bench_agent.py, which runs the bench task suite
(bench/tasks.py) with the test model under every variant in LOCAL_VARIANTS and reports how many tasks each
one completes; see bench/RESULTS.md for the figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_SYSTEM_MESSAGE = """You are Open Interpreter, a world-class programmer who can complete any goal by running code.
First write a short plan, and recap it between code blocks: you forget things quickly.
Code you write runs on the user's machine; the user has given you full permission to run any code needed for the task.
Try things, print what you learn, and go on in small, informed steps: for stateful languages (python, javascript, shell) do not try to do everything in one block.
If at first you do not succeed, try again. You can install new packages.
When the user names a file, it is most likely in the directory your code runs in.
Write messages to the user in Markdown. You are capable of any task."""

LOOP_MESSAGE = (
    "Proceed. You CAN run code on my machine. If the entire task I asked for is done, say exactly 'The task is done.' "
    "If you need some specific information (like username or password) say EXACTLY 'Please provide more information.' "
    "If it's impossible, say 'The task is impossible.' (If I haven't provided a task, say exactly "
    "'Let me know what you'd like to do next.') Otherwise keep going."
)
LOOP_BREAKERS = [
    "The task is done.",
    "The task is impossible.",
    "Let me know what you'd like to do next.",
    "Please provide more information.",
]


# Added to the system message when the model does not call functions (the seed's llm.execution_instructions).
DEFAULT_EXECUTION_INSTRUCTIONS = (
    "To execute code on the user's machine, write a markdown code block. Specify the language after the ```. "
    "You will receive the output. Use any programming language."
)

CODE_OUTPUT_TEMPLATE = "Code output: {content}\n\nWhat does this output mean / what's next (if anything, or are we done)?"
EMPTY_CODE_OUTPUT_TEMPLATE = (
    "The code above was executed on my machine. It produced no text output. What's next (if anything, or are we done?)"
)


@dataclass(frozen=True)
class PromptVariant:
    """Everything the agent says to the model besides the conversation itself."""

    name: str
    system_message: str
    execution_instructions: str
    user_message_template: str = "{content}"
    always_apply_user_message_template: bool = False
    code_output_template: str = CODE_OUTPUT_TEMPLATE
    empty_code_output_template: str = EMPTY_CODE_OUTPUT_TEMPLATE
    code_output_sender: str = "user"
    notes: str = ""
    examples: tuple[tuple[str, str], ...] = ()  # (role, content) turns shown before the conversation
    settings: dict = field(default_factory=dict)


# Open Interpreter's own settings, as a baseline for local models.
OI_BASELINE = PromptVariant(
    name="oi-baseline",
    system_message=DEFAULT_SYSTEM_MESSAGE,
    execution_instructions=DEFAULT_EXECUTION_INSTRUCTIONS,
    notes="Open Interpreter's system message and templates, unchanged.",
)

_EXAMPLE = """Example.
User: What is 15 * 4?
Assistant:
```python
print(15 * 4)
```
User: Output: 60
Assistant: 15 * 4 is 60."""

# A short system message with one worked example; the output comes back with a plain instruction to answer.
WORKED_EXAMPLE = PromptVariant(
    name="worked-example",
    system_message=(
        "You are a helpful assistant that answers by running code on the user's computer.\n"
        "To run code, reply with exactly one markdown code block, ```python or ```shell, and nothing else. "
        "The code must print its result. You will then get the output; answer in one short sentence using it.\n\n"
        + _EXAMPLE
    ),
    execution_instructions="",
    code_output_template="Output: {content}\n\nUsing this output, answer my question in one short sentence.",
    empty_code_output_template="The code ran and printed nothing. If the task is done, say so in one short sentence.",
    notes="Short system message with one worked example; output template asks for a one-sentence answer.",
)

# The worked example, plus the instruction repeated next to the user's last message.
EXAMPLE_AND_REMINDER = PromptVariant(
    name="example+reminder",
    system_message=WORKED_EXAMPLE.system_message,
    execution_instructions="",
    user_message_template=(
        "{content}\n\n(Reply with one ```python or ```shell code block that prints the answer.)"
    ),
    code_output_template=WORKED_EXAMPLE.code_output_template,
    empty_code_output_template=WORKED_EXAMPLE.empty_code_output_template,
    notes="As worked-example, with a one-line reminder wrapped around the last user message.",
)

_ANSWER_PROMPT = "Using this output, answer my question in one short sentence."

# The worked examples as real conversation turns (small models imitate turns better than descriptions).
EXAMPLE_TURNS = PromptVariant(
    name="example-turns",
    system_message=(
        "You are a helpful assistant that answers by running code on the user's computer. "
        "Reply with exactly one ```python or ```shell code block that prints the answer, and nothing else. "
        "When you get the output, answer in one short sentence."
    ),
    execution_instructions="",
    user_message_template=EXAMPLE_AND_REMINDER.user_message_template,
    code_output_template="Output: {content}\n\n" + _ANSWER_PROMPT,
    empty_code_output_template=WORKED_EXAMPLE.empty_code_output_template,
    examples=(
        ("user", "What is 15 * 4?"),
        ("assistant", "```python\nprint(15 * 4)\n```"),
        ("user", "Output: 60\n\n" + _ANSWER_PROMPT),
        ("assistant", "15 * 4 is 60."),
        ("user", "Show the files in the current folder."),
        ("assistant", "```shell\nls\n```"),
        ("user", "Output: report.pdf\ntodo.txt\n\n" + _ANSWER_PROMPT),
        ("assistant", "The folder holds report.pdf and todo.txt."),
    ),
    notes="Short system message; two worked examples (python, shell) as real conversation turns; reminder.",
)

# The variants bench/bench_agent.py compares. WORKED_EXAMPLE alone was measured too and dropped from the
# bench: 1/12 tasks, no better than the baseline (2026-11-22, SmolLM2-135M, bench/tasks.py).
LOCAL_VARIANTS: dict[str, PromptVariant] = {v.name: v for v in (OI_BASELINE, EXAMPLE_AND_REMINDER, EXAMPLE_TURNS)}

# Chosen by measurement (bench/bench_agent.py, SmolLM2-135M-Instruct, 12 tasks, 2026-11-22) on the whole
# loop, a task done with the right output AND answered with it: example-turns 6/12, example+reminder 1/12,
# Open Interpreter's own prompt 1/12 (right output alone: 6, 7 and 1; worked-example alone: 1).
LOCAL_DEFAULT = EXAMPLE_TURNS
