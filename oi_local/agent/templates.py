"""System messages and message templates: Open Interpreter's defaults, and the variants for small local models.

The local default (LOCAL_DEFAULT, with the harness settings LOCAL_HARNESS) was chosen by bench/bench_agent.py,
which runs the tuning suite (bench/tasks.py) and the untuned one (bench/tasks_untuned.py) with the test model
under every harness and reports how many tasks each completes; see bench/RESULTS.md for the figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from oi_local.agent.examples import ANSWER_PROMPT as _ANSWER_PROMPT
from oi_local.agent.examples import worked_example as _example
from oi_local.agent.general_examples import GENERAL_POOL

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


# Repair requests (agent/turn.py, agent/repair.py): {content} is the run's output, {error} the error in one
# line with a hint that follows from it; for "missing", {content} names what the task asked for and {code}
# is Python that creates it (repair.creation_code).
REPAIR_TEMPLATES: dict[str, str] = {
    "failed": "Output: {content}\n\n{error}\nReply with the corrected code in one code block.",
    "restated": "{error}\nDo not repeat the error: reply with the corrected code in one code block.",
    "missing": "There is no {content} in the current folder yet. Reply with one code block that creates it, "
               "like this:\n```python\n{code}\n```",
    "restart": "({error} Write different code.)",
    "ungrounded": "Output: {content}\n\nThat answer does not use the output. Using this output, answer my question in "
                  "one short sentence.",
}

# The answer after a run that worked, asked from the task and its output alone (agent.short_answers): with
# the worked examples in view a small model copies their answers ("15 * 4 is 60.").
ANSWER_SYSTEM_MESSAGE = "You answer questions from the output of code that ran. Answer in one short sentence."
ANSWER_TEMPLATE = "Question: {task}\n\nOutput of the code:\n{content}\n\nAnswer the question using the output."

# Code that would write over a file the task only names is not run (agent.precheck_samples > 0); {content}
# names the files, {code} reads the first.
NOT_RUN_TEMPLATE = "(Not run: that code would overwrite {content}, which the task did not ask to change. Read it like this: {code})"


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
    repair_templates: dict = field(default_factory=lambda: dict(REPAIR_TEMPLATES))
    example_pool: tuple = ()  # worked examples (each a tuple of turns) chosen per task, after `examples`
    examples_per_task: int = 0
    fallback_examples: int = 0  # after a failure in the turn, this many of the pool in place of all the above
    # when a first reply's code cannot work and no sample with the examples above can, samples drawn with the
    # fallback_examples closest examples of this pool in their place (agent.precheck_pool)
    precheck_pool: tuple = ()


# Open Interpreter's own settings, as a baseline for local models.
OI_BASELINE = PromptVariant(
    name="oi-baseline",
    system_message=DEFAULT_SYSTEM_MESSAGE,
    execution_instructions=DEFAULT_EXECUTION_INSTRUCTIONS,
    notes="Open Interpreter's system message and templates, unchanged.",
)

_REMINDER = "{content}\n\n(Reply with one ```python or ```shell code block that prints the answer.)"
_LOCAL_SYSTEM_MESSAGE = (
    "You are a helpful assistant that answers by running code on the user's computer. "
    "Reply with exactly one ```python or ```shell code block that prints the answer, and nothing else. "
    "When you get the output, answer in one short sentence."
)
_EMPTY_OUTPUT = "The code ran and printed nothing. If the task is done, say so in one short sentence."


# Two fixed worked examples as real conversation turns (small models imitate turns better than descriptions).
EXAMPLE_TURNS = PromptVariant(
    name="example-turns",
    system_message=_LOCAL_SYSTEM_MESSAGE,
    execution_instructions="",
    user_message_template=_REMINDER,
    code_output_template="Output: {content}\n\n" + _ANSWER_PROMPT,
    empty_code_output_template=_EMPTY_OUTPUT,
    examples=_example("What is 15 * 4?", "python", "print(15 * 4)", "60", "15 * 4 is 60.")
    + _example("Show the files in the current folder.", "shell", "ls", "report.pdf\ntodo.txt",
               "The folder holds report.pdf and todo.txt."),
    notes="Short system message; two worked examples (python, shell) as real conversation turns; reminder.",
)

# Worked examples in Python (the test model writes Python whatever it is shown, even in a block forced to be
# shell), one or two per kind of task of the tuning suite; none names a file or value of a bench task.
PYTHON_POOL = (
    _example("What is 15 * 4?", "python", "print(15 * 4)", "60", "15 * 4 is 60."),
    _example('Replace the spaces in "a b c" with dashes.', "python", 'print("a b c".replace(" ", "-"))', "a-b-c",
             "It becomes a-b-c."),
    _example("Show the files in the current folder.", "python", "print(os.listdir())", "['report.pdf', 'todo.txt']",
             "The folder holds report.pdf and todo.txt."),
    _example("What does the file todo.txt say?", "python", 'print(open("todo.txt").read())', "buy milk",
             "todo.txt says: buy milk."),
    _example("Make a file fruit.txt that contains the word apple.", "python",
             'with open("fruit.txt", "w") as f:\n    f.write("apple")\nprint(open("fruit.txt").read())', "apple",
             "fruit.txt now contains apple."),
    _example("Create a folder called photos.", "python", 'os.mkdir("photos")\nprint(os.listdir())', "['photos']",
             "I created the folder photos."),
    _example("How many lines does the file log.txt have?", "python", 'print(len(open("log.txt").readlines()))', "12",
             "log.txt has 12 lines."),
    _example("What is the product of the numbers from 1 to 5?", "python", "print(math.prod(range(1, 6)))", "120",
             "The product of the numbers from 1 to 5 is 120."),
)

# The two examples of the pool closest to the task (agent/examples.py), the closest last.
CHOSEN_EXAMPLES = PromptVariant(
    name="chosen-examples",
    system_message=_LOCAL_SYSTEM_MESSAGE,
    execution_instructions="",
    user_message_template=_REMINDER,
    code_output_template=EXAMPLE_TURNS.code_output_template,
    empty_code_output_template=_EMPTY_OUTPUT,
    example_pool=PYTHON_POOL,
    examples_per_task=2,
    notes="Short system message; the two worked examples of a Python pool (one per kind) closest to the task.",
)

# The two fixed examples, then the closest example of the pool.
EXAMPLE_TURNS_PLUS_ONE = replace(
    CHOSEN_EXAMPLES,
    name="example-turns+1",
    examples=EXAMPLE_TURNS.examples,
    examples_per_task=1,
    notes="The two fixed worked examples, then the closest of the Python pool.",
)

# The two fixed examples; once a run in the turn has failed (or what the task asked for is missing), the two
# examples of the pool closest to the task in their place: the fixed examples do better on the untuned
# suite's first replies, the pool's on the file and folder tasks.
EXAMPLE_TURNS_FALLBACK = replace(
    EXAMPLE_TURNS,
    name="example-turns+fallback",
    example_pool=PYTHON_POOL,
    fallback_examples=2,
    notes="The two fixed worked examples; after a failure, the two of the Python pool closest to the task instead.",
)

# The fallback variant; when the model's first reply cannot work (precheck) and no sample drawn with the fixed
# examples can either, samples drawn with the two examples of the general pool (general_examples.py, written
# without the bench tasks in view) closest to the task: it shows the idiom the fixed examples do not.
EXAMPLE_TURNS_GENERAL = replace(
    EXAMPLE_TURNS_FALLBACK,
    name="example-turns+fallback+general",
    precheck_pool=GENERAL_POOL,
    notes="example-turns+fallback; a first reply no sample can mend is sampled again with the general pool's closest two.",
)

# The variants bench/bench_agent.py compares. Measured and dropped (bench/RESULTS.md has the figures): one
# worked example in the system message, the same with a reminder, one fixed example per kind (shell for files
# and folders), shell named first, 1 or 3 chosen examples, the two fixed examples plus one chosen.
LOCAL_VARIANTS: dict[str, PromptVariant] = {v.name: v for v in (OI_BASELINE, EXAMPLE_TURNS, EXAMPLE_TURNS_PLUS_ONE,
                                                                 EXAMPLE_TURNS_FALLBACK, EXAMPLE_TURNS_GENERAL,
                                                                 CHOSEN_EXAMPLES)}

# Chosen by measurement (bench/bench_agent.py with SmolLM2-135M-Instruct; bench/RESULTS.md): the harness that
# does best on the untuned suite, ties broken by the tuning suite. The fixed examples do better than chosen
# ones on the untuned suite's first replies; after a failure the pool's closest examples take their place
# (the pool was written with the tuning suite in view, and the test model copies the closest example); a first
# reply no sample mends is sampled again with the general pool's closest (run 5: 8/15 untuned, was 7/15).
LOCAL_DEFAULT = EXAMPLE_TURNS_GENERAL

# The harness settings of the local defaults (attributes of OpenInterpreter), chosen the same way.
LOCAL_HARNESS: dict = {
    "max_repairs": 2,  # N: repair requests per chat() call
    "repair_restart": True,  # a repair restates the task with the error (the model copies code it sees)
    "repair_temperature": None,  # repair replies at the model's temperature (sampling at 0.7 did not win)
    "check_asked_files": True,
    "first_reply_grammar": (),  # the envelope grammar did not win: off
    "precheck_samples": 4,  # code that cannot work is replaced by the best of up to 4 sampled replies
    "check_answers": True,  # an answer that says nothing of the output is asked for again, once
    "short_answers": True,  # the answer after a run that worked is asked from the task and output alone
}
