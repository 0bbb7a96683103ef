"""Agent bench: streaming overhead and task success of the local prompt variants with the test model.

1. Streaming overhead: the same request (the agent's own first request for a story prompt, temperature 0,
   a fixed max_tokens) sent straight to the llama.cpp server with httpx, and through the agent
   (OpenInterpreter.chat(stream=True): litellm, the fence parser, LMC chunks), alternated, median of each.
   Ratio = agent tokens/s / direct tokens/s (goal >= 0.97).
2. Task success: every harness in HARNESSES (a prompt variant of oi_local.agent.templates plus the harness
   features: everyday modules in the kernel, repair requests, the asked-for files checked, the precheck and
   the answer checks) on the tuning suite (bench/tasks.py), the untuned one (bench/tasks_untuned.py, written
   before any tuning and never tuned on) and the fresh one (bench/tasks_fresh.py, written by a helper who saw
   neither other suite nor the worked examples; reported, never used to choose), each run twice: SmolLM2-135M-Instruct Q4_1, temperature 0, auto_run, the local defaults' limit of
   model replies per task (max_turns 6), max_tokens 160, one fresh folder per task; the server started as
   oi_local's runner starts it on this CPU (its thread plan, flash attention on). Baselines: Open
   Interpreter's own system message and templates, and the local default before issue 10 ("before").
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tasks import TASKS, BenchTask  # noqa: E402
from tasks_fresh import TASKS as FRESH  # noqa: E402
from tasks_untuned import TASKS as UNTUNED  # noqa: E402

from standins.raw_llama import as_the_runner, require_test_model, server  # noqa: E402

STORY_PROMPT = "Write a long story about a cat who learns to program."
STREAM_TOKENS = 120
REPEATS = 3
TASK_MAX_TOKENS = 160
REPEATS_TASKS = 2


def make_interpreter(base: str, computer=None):
    from oi_local import OpenInterpreter
    from oi_local.endpoint import Endpoint

    interpreter = OpenInterpreter(conversation_history=False, auto_run=True, computer=computer)
    interpreter.configure_for(Endpoint(base, "smollm2-135m", None, 2048, 256, "llamacpp"))
    return interpreter


# -- streaming overhead ---------------------------------------------------------------------------------


def direct_stream(base: str, messages: list[dict]) -> tuple[float, int]:
    body = {"model": "smollm2-135m", "messages": messages, "stream": True, "temperature": 0.0,
            "max_tokens": STREAM_TOKENS, "stop": ["<|im_end|>", "<|im_start|>", "<|eot_id|>", "<|end|>"]}
    started = time.perf_counter()
    pieces = 0
    with httpx.stream("POST", f"{base}/chat/completions", json=body, timeout=120) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and '"content"' in line and line != "data: [DONE]":
                pieces += 1
    return time.perf_counter() - started, pieces


def agent_stream(interpreter) -> tuple[float, int]:
    interpreter.messages = []
    started = time.perf_counter()
    pieces = 0
    stream = interpreter.chat(STORY_PROMPT, stream=True, display=False)
    for chunk in stream:
        if chunk["type"] == "confirmation":  # measure generation only: decline any code
            stream.close()
            break
        if "content" in chunk:
            pieces += 1
    return time.perf_counter() - started, pieces


def streaming_overhead(base: str) -> tuple[str, float]:
    from oi_local.agent.templates import OI_BASELINE

    interpreter = make_interpreter(base)
    interpreter.apply_prompt_variant(OI_BASELINE)
    interpreter.user_message_template = "{content}"
    interpreter.llm.max_tokens = STREAM_TOKENS
    interpreter.messages = [{"role": "user", "type": "message", "content": STORY_PROMPT}]
    messages = interpreter.llm.fit_to_context(interpreter.llm_messages())
    agent_stream(interpreter)  # warm-up: litellm import, first connection
    direct_stream(base, messages)
    direct_times, agent_times, direct_tokens, agent_chunks = [], [], 0, 0
    for _ in range(REPEATS):
        elapsed, direct_tokens = direct_stream(base, messages)
        direct_times.append(elapsed)
        elapsed, agent_chunks = agent_stream(interpreter)
        agent_times.append(elapsed)
    direct_time, agent_time = statistics.median(direct_times), statistics.median(agent_times)
    ratio = direct_time / agent_time
    table = (
        "| path | tokens | median seconds | tokens/s | ratio |\n|---|---|---|---|---|\n"
        f"| straight to the server (httpx, SSE) | {direct_tokens} | {direct_time:.3f} | {direct_tokens / direct_time:.1f} | 1.00 |\n"
        f"| through the agent (chat(stream=True)) | {direct_tokens} | {agent_time:.3f} | {direct_tokens / agent_time:.1f} | {ratio:.3f} |\n"
    )
    note = (f"{REPEATS} alternated runs each after one warm-up; the agent yielded {agent_chunks} LMC chunks "
            f"for the same {direct_tokens} streamed tokens.")
    return table + "\n" + note, ratio


# -- task success ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Harness:
    """One way of running the agent on the suites: a prompt variant plus the harness features."""

    name: str
    prompt: str  # a name in oi_local.agent.templates.LOCAL_VARIANTS
    preload: bool = True  # the kernel's everyday modules
    max_repairs: int = 0
    check_files: bool = False
    restart: bool = False  # repairs restate the task with the error (agent.repair_restart)
    repair_temperature: float | None = None
    first_grammar: tuple[str, ...] = ()
    precheck: int = 0  # agent.precheck_samples
    check_answers: bool = False
    short_answers: bool = False
    note: str = ""


HARNESSES = [
    Harness("oi-baseline", "oi-baseline", preload=False, note="Open Interpreter's own prompt, nothing else"),
    Harness("before", "example-turns", preload=False, note="the local default before issue 10"),
    Harness("preload", "example-turns", note="+ the everyday modules in the kernel"),
    Harness("turns+repairs-2", "example-turns", max_repairs=2, check_files=True,
            note="preload, at most 2 repair requests after the failed code in the conversation, files checked"),
    Harness("turns+restart-2", "example-turns", max_repairs=2, check_files=True, restart=True,
            note="preload, at most 2 repairs restating the task with the error, files checked"),
    Harness("turns+precheck", "example-turns", max_repairs=2, check_files=True, restart=True, precheck=4,
            note="turns+restart-2, code that cannot work replaced by the best of up to 4 sampled replies (precheck)"),
    Harness("turns+precheck+answers", "example-turns", max_repairs=2, check_files=True, restart=True, precheck=4,
            check_answers=True, short_answers=True,
            note="turns+precheck, the answer asked from the task and output alone and asked again when it "
                 "says nothing of the output"),
    Harness("turns+1+precheck+answers", "example-turns+1", max_repairs=2, check_files=True, restart=True, precheck=4,
            check_answers=True, short_answers=True,
            note="turns+precheck+answers with the closest example of the Python pool after the two fixed ones"),
    Harness("fallback+precheck+answers", "example-turns+fallback", max_repairs=2, check_files=True, restart=True,
            precheck=4, check_answers=True, short_answers=True,
            note="turns+precheck+answers; after a failure in the turn, the two examples of the Python pool closest "
                 "to the task in place of the fixed ones"),
    Harness("general+precheck+answers", "example-turns+fallback+general", max_repairs=2, check_files=True,
            restart=True, precheck=4, check_answers=True, short_answers=True,
            note="fallback+precheck+answers; a first reply whose code no sample mends is sampled again with the two "
                 "examples of the general pool (agent/general_examples.py, written blind) closest to the task"),
    Harness("chosen", "chosen-examples", note="+ preload, the two worked examples of a pool closest to the task"),
    Harness("chosen+grammar", "chosen-examples", first_grammar=("python", "shell"),
            note="chosen, the first reply constrained to one python or shell block (GBNF grammar)"),
    Harness("chosen+repairs-2", "chosen-examples", max_repairs=2, check_files=True,
            note="chosen, at most 2 repair requests after the failed code in the conversation, files checked"),
    Harness("chosen+restart-1", "chosen-examples", max_repairs=1, check_files=True, restart=True,
            note="chosen, at most 1 repair restating the task with the error, files checked"),
    Harness("chosen+restart-2", "chosen-examples", max_repairs=2, check_files=True, restart=True,
            note="chosen, at most 2 repairs restating the task with the error, files checked"),
    Harness("chosen+restart-3", "chosen-examples", max_repairs=3, check_files=True, restart=True,
            note="chosen, at most 3 repairs restating the task with the error, files checked"),
    Harness("chosen+restart-3-t0.7", "chosen-examples", max_repairs=3, check_files=True, restart=True,
            repair_temperature=0.7, note="chosen+restart-3, repair replies sampled at 0.7 (a second sample, seeded)"),
    Harness("chosen+precheck+answers", "chosen-examples", max_repairs=2, check_files=True, restart=True, precheck=4,
            check_answers=True, short_answers=True, note="chosen+restart-2 with precheck and the answer checks"),
]


@dataclass
class TaskResult:
    ran: bool  # the right output came from code the agent ran (or the file is there)
    answered: bool  # the model's last message holds it
    replies: int
    seconds: float
    last: str  # the model's last message, shortened


FAILED_RUN = ("Traceback (most recent call last)", "Error:", "[exit code ", "SyntaxError", "command not found")


def task_ok(task: BenchTask, messages: list[dict], folder: Path) -> tuple[bool, bool]:
    """(right output, answered). Right output: the expected text in the output of a run that did not fail (a
    traceback's "Cell In[3]" is not the answer 3), or the asked-for file holding it."""
    outputs = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "computer"
                       and m.get("type") == "console" and not any(mark in str(m.get("content", "")) for mark in FAILED_RUN))
    answers = [m for m in messages if m.get("role") == "assistant" and m.get("type") == "message"]
    answered = bool(answers) and task.expect in answers[-1]["content"]
    ran = task.expect in outputs
    if task.check_file:
        name, text = task.check_file
        target = folder / name
        ran = target.exists() and (not text or (target.is_file() and text in target.read_text(errors="replace")))
    return ran, answered


def model_replies(messages: list[dict]) -> int:
    """Model replies in a turn: runs of assistant messages."""
    count, previous = 0, None
    for message in messages:
        role = message.get("role")
        if role == "assistant" and previous != "assistant":
            count += 1
        previous = role
    return count


def make_computer(preload: bool):
    from oi_local.computer import Computer
    from oi_local.computer.languages import default_languages
    from oi_local.computer.languages.python import Python

    class PythonAsBefore(Python):
        def __init__(self, computer=None) -> None:
            super().__init__(computer)
            self.preload = ()

    languages = [PythonAsBefore if lang is Python else lang for lang in default_languages()] if not preload else None
    return Computer(languages=languages)


def run_suite(base: str, harness: Harness, tasks: list[BenchTask]) -> dict[str, TaskResult]:
    from oi_local.agent.templates import LOCAL_VARIANTS
    from oi_local.errors import OiLocalError

    interpreter = make_interpreter(base, make_computer(harness.preload))
    interpreter.apply_prompt_variant(LOCAL_VARIANTS[harness.prompt])
    for name, value in harness_settings(harness).items():
        setattr(interpreter, name, value)
    interpreter.llm.max_tokens = TASK_MAX_TOKENS
    results = {}
    home = os.getcwd()
    try:
        for task in tasks:
            folder = Path(tempfile.mkdtemp(prefix=f"oi-bench-{task.name}-"))
            for name, text in task.files.items():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_text(text)
            os.chdir(folder)
            interpreter.computer.run("python", f"import os\nos.chdir({str(folder)!r})")
            interpreter.computer.run("shell", f"cd {str(folder)!r}")
            interpreter.messages = []
            started = time.perf_counter()
            try:
                new = interpreter.chat(task.prompt, display=False)
            except OiLocalError as error:
                new = [{"role": "assistant", "type": "message", "content": f"ERROR {error}"}]
            seconds = time.perf_counter() - started
            ran, answered = task_ok(task, new, folder)
            answers = [m["content"] for m in new if m.get("role") == "assistant" and m.get("type") == "message"]
            last = " ".join((answers[-1] if answers else "").split())[:60]
            results[task.name] = TaskResult(ran, answered, model_replies(new), seconds, last)
            print(f"bench_agent: {harness.name} {task.name} {ran, answered} {seconds:.1f}s", file=sys.stderr, flush=True)
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        os.chdir(home)
        interpreter.computer.terminate()
    return results


def harness_settings(harness: Harness) -> dict:
    """The harness's settings as the agent's attributes (compare: templates.LOCAL_HARNESS)."""
    return {"max_repairs": harness.max_repairs, "repair_restart": harness.restart,
            "repair_temperature": harness.repair_temperature, "check_asked_files": harness.check_files,
            "first_reply_grammar": harness.first_grammar, "precheck_samples": harness.precheck,
            "check_answers": harness.check_answers, "short_answers": harness.short_answers}


def is_local_default(harness: Harness) -> bool:
    from oi_local.agent.templates import LOCAL_DEFAULT, LOCAL_HARNESS

    return harness.prompt == LOCAL_DEFAULT.name and harness.preload and harness_settings(harness) == LOCAL_HARNESS


def score(results: dict[str, TaskResult]) -> tuple[int, int, int]:
    """(whole loop, right output, answered)."""
    values = results.values()
    return sum(r.ran and r.answered for r in values), sum(r.ran for r in values), sum(r.answered for r in values)


def cell(result: TaskResult) -> str:
    mark = "done+answered" if result.ran and result.answered else "done" if result.ran else "answered" if result.answered else "-"
    return f"{mark} ({result.replies}, {result.seconds:.0f}s)"


def suite_tables(title: str, tasks: list[BenchTask], runs: dict[str, list[dict[str, TaskResult]]]) -> str:
    n = len(tasks)
    lines = [f"#### {title} ({n} tasks)", "",
             "| harness | whole loop (right output and answered with it) | right output | answered with it | "
             "model replies | seconds | slowest task (s) | second run identical |",
             "|---|---|---|---|---|---|---|---|"]
    for harness in HARNESSES:
        if harness.name not in runs:
            continue
        rounds = runs[harness.name]
        first = rounds[0]
        both, ran, answered = score(first)
        figures = " / ".join(f"{score(r)[0]}" for r in rounds)
        identical = all([(x.ran, x.answered, x.last) for x in r.values()] == [(x.ran, x.answered, x.last) for x in first.values()]
                        for r in rounds[1:])
        mark = " (local default)" if is_local_default(harness) else ""
        lines.append(
            f"| {harness.name}{mark} | {both}/{n} (runs: {figures}) | {ran}/{n} | {answered}/{n} | "
            f"{sum(r.replies for r in first.values())} | {sum(r.seconds for r in first.values()):.0f} | "
            f"{max(r.seconds for r in first.values()):.0f} | {'yes' if identical else 'no'} |"
        )
    names = [h.name for h in HARNESSES if h.name in runs]
    lines += ["", "Per task, first run: result (model replies, seconds).", "",
              "| task | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for task in tasks:
        lines.append(f"| {task.name} ({task.kind}) | " + " | ".join(cell(runs[n][0][task.name]) for n in names) + " |")
    default_name = next((h.name for h in HARNESSES if h.name in runs and is_local_default(h)), names[-1])
    lines += ["", f"The model's last message per task ({default_name}, first run):", ""]
    lines += [f"- {task.name}: {runs[default_name][0][task.name].last!r}" for task in tasks]
    return "\n".join(lines)


SUITES = {"tuning suite (bench/tasks.py)": TASKS, "untuned suite (bench/tasks_untuned.py)": UNTUNED,
          "fresh suite (bench/tasks_fresh.py)": FRESH}


def task_success(base: str, harnesses: list[Harness] | None = None, repeats: int = REPEATS_TASKS,
                 suites: dict[str, list[BenchTask]] | None = None) -> tuple[str, dict]:
    suites = suites or SUITES
    runs: dict[str, dict[str, list]] = {title: {} for title in suites}
    for _ in range(repeats):
        for harness in harnesses or HARNESSES:
            for title, tasks in suites.items():
                runs[title].setdefault(harness.name, []).append(run_suite(base, harness, tasks))
    notes = "\n".join(f"- {h.name}: {h.note}" for h in (harnesses or HARNESSES))
    tables = "\n\n".join(suite_tables(title, suites[title], runs[title]) for title in suites)
    return notes + "\n\n" + tables + "\n\n" + winner(runs), runs


def winner(runs: dict[str, dict[str, list]]) -> str:
    """The harness with the most whole-loop tasks on the untuned suite over all runs (ties: the tuning suite,
    then the fewer model replies)."""
    untuned = next((r for title, r in runs.items() if title.startswith("untuned")), None)
    tuning = next((r for title, r in runs.items() if title.startswith("tuning")), {})
    if not untuned:
        return ""

    def key(name: str) -> tuple:
        def total(rounds: list) -> int:
            return sum(score(r)[0] for r in rounds)

        replies = sum(x.replies for r in untuned[name] for x in r.values())
        return total(untuned[name]), total(tuning.get(name, [])), -replies

    best = max(untuned, key=key)
    return (f"Best on the untuned suite (whole loop summed over its runs; ties: the tuning suite, then fewer model "
            f"replies): **{best}**.")


def run(harnesses: list[Harness] | None = None, repeats: int = REPEATS_TASKS, overhead: bool = True,
        suites: dict[str, list[BenchTask]] | None = None) -> str:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    runner_args, runner_env = as_the_runner()
    with tempfile.TemporaryDirectory(prefix="oi-bench-agent-") as folder, \
            server(require_test_model(), 2048, Path(folder) / "server.log", extra=("--model_alias", "smollm2-135m",
                   *runner_args), env=runner_env, timeout=120) as started:
        overhead_table = streaming_overhead(started.base)[0] if overhead else "(not measured in this run)"
        success_table, _ = task_success(started.base, harnesses, repeats, suites)
    load = os.getloadavg()[0]
    return (
        "## Agent: streaming overhead and task success (bench/bench_agent.py)\n\n"
        + (__doc__ or "").strip().split("\n", 1)[1].strip()
        + "\n\n### Streaming overhead\n\n" + overhead_table
        + f"\n\n### Task success ({repeats} runs of each harness on each suite; 1-minute load average at the end "
        + f"{load:.1f} on {os.cpu_count()} cores)\n\n" + success_table + "\n"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="The agent bench (a partial run prints its section only).")
    parser.add_argument("--harness", action="append", help="run only these harnesses (repeatable)")
    parser.add_argument("--repeats", type=int, default=REPEATS_TASKS)
    parser.add_argument("--no-overhead", action="store_true", help="skip the streaming-overhead measurement")
    parser.add_argument("--suite", choices=("tuning", "untuned", "fresh", "both", "all"), default="all",
                        help="both: tuning and untuned; all: the fresh suite too")
    options = parser.parse_args()
    chosen = [h for h in HARNESSES if not options.harness or h.name in options.harness]
    picked = {title: tasks for title, tasks in SUITES.items() if options.suite == "all" or title.startswith(options.suite)
              or (options.suite == "both" and not title.startswith("fresh"))}
    print(run(chosen, options.repeats, overhead=not options.no_overhead, suites=picked))
