"""Start-up cost: `import oi_local`, `interpreter --version`, `interpreter --help` against a bare Python start.

Each command runs as a fresh process (median of RUNS runs, after one warm-up run that fills the OS file
cache); peak memory is the child's maximum resident set size as the kernel reports it (os.wait4).
Optionally Open Interpreter's own `interpreter --help`, from a separate venv under bench/.work
(installed with pip on the first run if that is quick enough; skipped with the reason otherwise).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 7
SLOW_RUNS = 3  # Open Interpreter's start takes seconds: fewer runs keep the bench near two minutes
HELP_GOAL_S = 0.25
BENCH_DIR = Path(__file__).resolve().parent
WORK = BENCH_DIR / ".work"
OI_VENV = WORK / "oi-venv"
OI_INSTALL_TIMEOUT_S = 100


def measure_once(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """(wall seconds, peak RSS in bytes) of one run of the command (exit status 0 required)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}")
    peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return wall, peak


def measure_all(commands: list[list[str]], runs: list[int], env: dict[str, str] | None = None) -> list[tuple[float, float]]:
    """(median wall seconds, median peak RSS in MiB) per command, each run `runs[i]` times. Runs are
    interleaved (one of each command per round) so that load from other processes falls on all alike."""
    for command in commands:
        measure_once(command, env)  # warm-up
    samples: list[list[tuple[float, int]]] = [[] for _ in commands]
    for round_number in range(max(runs)):
        for index, command in enumerate(commands):
            if round_number < runs[index]:
                samples[index].append(measure_once(command, env))
    return [
        (statistics.median(s[0] for s in runs_of), statistics.median(s[1] for s in runs_of) / 2**20)
        for runs_of in samples
    ]


def open_interpreter_help() -> tuple[list[str] | None, str]:
    """The command for Open Interpreter's `interpreter --help`, installing it first if needed."""
    script = OI_VENV / "bin" / "interpreter"
    if script.exists():
        return [str(script), "--help"], "already installed in bench/.work/oi-venv"
    WORK.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        subprocess.run([sys.executable, "-m", "venv", str(OI_VENV)], check=True, capture_output=True, timeout=60)
        subprocess.run(
            [str(OI_VENV / "bin" / "pip"), "install", "-q", "open-interpreter"],
            check=True, capture_output=True, timeout=OI_INSTALL_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return None, f"skipped: `pip install open-interpreter` took over {OI_INSTALL_TIMEOUT_S} s (run it by hand in bench/.work/oi-venv to include it)"
    except (subprocess.CalledProcessError, OSError) as error:
        return None, f"skipped: open-interpreter could not be installed ({type(error).__name__})"
    if not script.exists():
        return None, "skipped: the open-interpreter package installed no `interpreter` script"
    return [str(script), "--help"], f"installed in {time.monotonic() - started:.0f} s"


def run() -> str:
    python = sys.executable
    interpreter = str(Path(python).with_name("interpreter"))
    rows = [
        ("bare Python start (baseline)", [python, "-c", "pass"]),
        ("`import oi_local`", [python, "-c", "import oi_local"]),
        ("`interpreter --version`", [interpreter, "--version"]),
        ("`interpreter --help`", [interpreter, "--help"]),
        ("`import rich.console, rich.live, rich.markdown` (chat path only)", [python, "-c", "import rich.console, rich.live, rich.markdown"]),
    ]
    oi_command, oi_note = open_interpreter_help()
    if oi_command:
        rows.append(("Open Interpreter `interpreter --help` (separate venv)", oi_command))
    # litellm's cost map read from the package, not fetched: the comparison does not depend on the network
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    runs = [SLOW_RUNS if "Open Interpreter" in label else RUNS for label, _ in rows]
    figures = measure_all([command for _, command in rows], runs, env=env)
    results = [(label, wall, rss) for (label, _), (wall, rss) in zip(rows, figures, strict=True)]
    base_wall, base_rss = results[0][1], results[0][2]
    lines = [
        "## Start-up",
        "",
        f"Each command is a fresh process, median of {RUNS} runs ({SLOW_RUNS} for Open Interpreter; interleaved, after a warm-up run of each); peak memory is the "
        "child's maximum RSS (os.wait4). Ratios are against the bare Python start measured in the same run. "
        "Every run has LITELLM_LOCAL_MODEL_COST_MAP=True (Open Interpreter would otherwise try to fetch a price list).",
        "",
        "| command | wall (s) | × bare Python | peak RSS (MiB) | × bare Python |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, wall, rss in results:
        lines.append(f"| {label} | {wall:.3f} | {wall / base_wall:.2f} | {rss:.1f} | {rss / base_rss:.2f} |")
    help_wall = next(wall for label, wall, _ in results if label == "`interpreter --help`")
    lines += ["", f"`interpreter --help`: {help_wall:.3f} s against the goal of at most {HELP_GOAL_S} s "
              f"({'met' if help_wall <= HELP_GOAL_S else 'NOT met'})."]
    if oi_command:
        oi_wall = results[-1][1]
        lines.append(f"Open Interpreter's `interpreter --help` takes {oi_wall / help_wall:.1f}× as long as ours ({oi_note}).")
    else:
        lines.append(f"Open Interpreter comparison {oi_note}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run())
