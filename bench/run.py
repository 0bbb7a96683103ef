"""Run every benchmark (bench/bench_*.py) and write bench/RESULTS.md.

Usage: .venv/bin/python bench/run.py [NAME ...]   (NAME: e.g. "startup" for bench/bench_startup.py)

Each bench module has `run() -> str`, returning a markdown section (a `## Title`, the exact command or
setup it measured, and a table). Figures are ratios against a baseline measured in the same run. Each
module runs in a fresh Python process, so none inherits another's imports, memory or environment.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "RESULTS.md"


def machine() -> str:
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = psutil.virtual_memory().total / 2**30
    return f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} logical cores, {ram:.0f} GiB RAM, Python {platform.python_version()}"


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_isolated(path: Path) -> str:
    """The module's section, from `run()` called in a child process."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "section.md"
        done = subprocess.run([sys.executable, __file__, "--one", str(path), str(out)], cwd=BENCH_DIR.parent)
        if done.returncode != 0 or not out.exists():
            return f"## {path.stem}\n\nFAILED: the benchmark process exited with {done.returncode} (its output is above)."
        return out.read_text().strip()


def run_one(path: Path, out: Path) -> int:
    try:
        section = load(path).run().strip()
    except Exception as error:  # a failed benchmark is reported, not hidden
        section = f"## {path.stem}\n\nFAILED: {type(error).__name__}: {error}"
    out.write_text(section)
    return 0


def main(argv: list[str]) -> int:
    wanted = set(argv)
    paths = sorted(BENCH_DIR.glob("bench_*.py"))
    if wanted:
        paths = [p for p in paths if p.stem.removeprefix("bench_") in wanted]
    sections = []
    for path in paths:
        started = time.monotonic()
        print(f"bench: {path.stem} ...", flush=True)
        sections.append(run_isolated(path))
        print(f"bench: {path.stem} done in {time.monotonic() - started:.1f}s", flush=True)
    command = "python bench/run.py" + ("" if not argv else " " + " ".join(argv))
    header = (
        "# Benchmark results\n\n"
        f"- command: `{command}`\n"
        f"- machine: {machine()}\n"
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}\n"
    )
    if wanted and RESULTS.exists():
        print(f"bench: partial run; sections printed, {RESULTS.name} not rewritten")
        print("\n\n".join(sections))
        return 0
    RESULTS.write_text(header + "\n" + "\n\n".join(sections) + "\n")
    print(f"bench: wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH_DIR.parent))
    if sys.argv[1:2] == ["--one"]:
        sys.exit(run_one(Path(sys.argv[2]), Path(sys.argv[3])))
    sys.exit(main(sys.argv[1:]))
