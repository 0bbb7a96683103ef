"""Per-run floor of the Computer's languages, each against a raw baseline measured in the same run.

- shell: `computer.run("shell", "true")` on the persistent bash (after a first run) against a fresh
  `subprocess.run(["bash", "-c", "true"])`, the cheapest way to run a shell command at all.
- python: `computer.run("python", "x = 1")` on its kernel against `execute("x = 1")` + wait for idle on a
  second kernel driven with raw jupyter_client (no active-line markers, no chunk translation).
- javascript: `computer.run("javascript", "1")` on the persistent node against a fresh `node -e 1`.
- active-line markers: a module-level loop of 10^6 additions in a cell, on the Computer's kernel (with the
  markers) against the raw kernel (without); a bash loop of 20000 additions on the persistent shell, without
  and with the DEBUG trap that reports shell lines (`Shell.active_lines`), against the same loop in `bash -c`.
- kernel start: the first Python run of a fresh Computer against KernelManager start + wait_for_ready, and
  the first run after `computer.warm_up("python")` had finished.
- waiting for input: how long `read x` takes to be detected and stopped (checks every 0.25 s).
- forbidden-commands check (computer/forbidden.py, run before every block): a 30-line shell block and a
  30-line Python cell, each against the whole per-run floor of its language measured above.
Times are medians of ROUNDS interleaved rounds (wall clock, ms).
"""

from __future__ import annotations

import queue
import shutil
import statistics
import subprocess
import sys
import time

ROUNDS = 40
LOOP = "s = 0\nfor i in range(1000000):\n    s += i"
SHELL_LOOP = "n=0\nfor i in $(seq 20000); do\n  n=$((n + i))\ndone"
SHELL_BLOCK = "\n".join([
    "set -e", "cd /tmp && mkdir -p oi-bench && cd oi-bench", "rm -rf ./build dist/*.whl",
    "for f in *.txt; do echo \"$f\" | tr a-z A-Z > \"${f%.txt}.up\"; done",
    "sudo -n apt-get install -y curl 2>/dev/null || true", "find . -name '*.pyc' -delete",
    "python3 -c 'print(1)' | cat", "git status --short | head -n 5", "echo \"$(date) done\" >> log.txt",
    "ls -la /tmp | grep oi-bench",
] * 3)
PYTHON_BLOCK = "\n".join([
    "import os, shutil, subprocess", "from pathlib import Path", "root = Path.home() / '.cache' / 'oi-bench'",
    "shutil.rmtree(root / 'old', ignore_errors=True)", "os.makedirs(root, exist_ok=True)",
    "subprocess.run(['ls', '-la', str(root)], check=False)", "for name in os.listdir(root):",
    "    print(name, os.path.getsize(root / name))", "os.system('echo done')", "data = [i * i for i in range(10)]",
] * 3)


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _time(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _raw_kernel():
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpec

    manager = KernelManager()
    manager._kernel_spec = KernelSpec(
        argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}", "--HistoryManager.enabled=False"],
        display_name="raw", language="python",
    )
    manager.start_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    return manager, client


def _raw_execute(client, code: str) -> None:
    msg_id = client.execute(code)
    while True:
        try:
            message = client.get_iopub_msg(timeout=30)
        except queue.Empty:
            raise RuntimeError("the raw kernel did not answer") from None
        if (
            message["parent_header"].get("msg_id") == msg_id
            and message["msg_type"] == "status"
            and message["content"]["execution_state"] == "idle"
        ):
            return


def run() -> str:
    from oi_local.computer import Computer

    rows: list[tuple[str, float, float]] = []
    computer = Computer()
    manager, client = _raw_kernel()
    try:
        # kernel start: raw start, our first run, our first run after warm_up
        start_raw = _time(lambda: _raw_kernel_and_stop())
        first_run = _time(lambda: computer.run("python", "x = 1"))
        warmed = Computer()
        warmed.warm_up("python")
        warmed._instance(warmed.get_language("python"))._warm_thread.join()
        after_warm_up = _time(lambda: warmed.run("python", "x = 1"))
        warmed.terminate()

        computer.run("shell", "true")
        node = shutil.which("node")
        if node:
            computer.run("javascript", "1")
        from oi_local.computer.forbidden import DEFAULT_FORBIDDEN_COMMANDS, find_forbidden

        shell, bash, python, raw, js, raw_node, check_shell, check_python = [], [], [], [], [], [], [], []
        for _ in range(ROUNDS):
            check_shell.append(_time(lambda: find_forbidden(SHELL_BLOCK, DEFAULT_FORBIDDEN_COMMANDS, "shell", "/tmp")))
            check_python.append(_time(lambda: find_forbidden(PYTHON_BLOCK, DEFAULT_FORBIDDEN_COMMANDS, "python")))
            shell.append(_time(lambda: computer.run("shell", "true")))
            bash.append(_time(lambda: subprocess.run(["bash", "-c", "true"], check=True)))
            python.append(_time(lambda: computer.run("python", "x = 1")))
            raw.append(_time(lambda: _raw_execute(client, "x = 1")))
            if node:
                js.append(_time(lambda: computer.run("javascript", "1")))
                raw_node.append(_time(lambda: subprocess.run([node, "-e", "1"], check=True)))
        rows.append(("shell `true` (persistent bash) vs `bash -c true`", _median_ms(shell), _median_ms(bash)))
        rows.append(("python `x = 1` vs raw jupyter_client execute", _median_ms(python), _median_ms(raw)))
        if node:
            rows.append(("javascript `1` (persistent node) vs `node -e 1`", _median_ms(js), _median_ms(raw_node)))
        rows.append(("forbidden-commands check of a 30-line shell block vs shell `true` above", _median_ms(check_shell),
                     _median_ms(shell)))
        rows.append(("forbidden-commands check of a 30-line Python cell vs python `x = 1` above",
                     _median_ms(check_python), _median_ms(python)))

        marked = statistics.median(_time(lambda: computer.run("python", LOOP)) for _ in range(3))
        unmarked = statistics.median(_time(lambda: _raw_execute(client, LOOP)) for _ in range(3))
        rows.append(("python loop of 10^6 additions: with active-line markers vs raw kernel", marked * 1000, unmarked * 1000))
        from oi_local.computer.languages.shell import Shell

        class TracedShell(Shell):
            active_lines = True

        traced_computer = Computer(languages=[TracedShell])
        traced_computer.run("shell", "true")
        default = statistics.median(_time(lambda: computer.run("shell", SHELL_LOOP)) for _ in range(3))
        traced = statistics.median(_time(lambda: traced_computer.run("shell", SHELL_LOOP)) for _ in range(3))
        plain = statistics.median(_time(lambda: subprocess.run(["bash", "-c", SHELL_LOOP], check=True)) for _ in range(3))
        traced_computer.terminate()
        rows.append(("shell loop of 20000 additions (default: no active lines) vs `bash -c`", default * 1000, plain * 1000))
        rows.append(("the same with `Shell.active_lines = True` (DEBUG trap) vs `bash -c`", traced * 1000, plain * 1000))
        rows.append(("first python run of a new Computer vs raw kernel start", first_run * 1000, start_raw * 1000))
        rows.append(("first python run after warm_up() vs raw execute", after_warm_up * 1000, _median_ms(raw)))
        waiting = statistics.median(_time(lambda: computer.run("shell", "read x")) for _ in range(3))
        rows.append(("shell `read x`: detected and stopped (no baseline: checks every 0.25 s)", waiting * 1000, float("nan")))
    finally:
        computer.terminate()
        client.stop_channels()
        manager.shutdown_kernel(now=True)

    lines = [
        "## Computer: per-run floor of code execution",
        "",
        f"Medians of {ROUNDS} interleaved rounds on this machine (ms; ratio = ours / baseline, lower is better).",
        "Baselines: a fresh `bash -c true`, a raw jupyter_client execute on a second kernel, a fresh `node -e 1`.",
        "",
        "| what | ours (ms) | baseline (ms) | ratio |",
        "|---|---:|---:|---:|",
    ]
    for label, ours, base in rows:
        ratio = "" if base != base else f"{ours / base:.2f}"
        base_text = "" if base != base else f"{base:.1f}"
        lines.append(f"| {label} | {ours:.1f} | {base_text} | {ratio} |")
    return "\n".join(lines) + "\n"


def _raw_kernel_and_stop() -> None:
    manager, client = _raw_kernel()
    client.stop_channels()
    manager.shutdown_kernel(now=True)


if __name__ == "__main__":
    print(run())
