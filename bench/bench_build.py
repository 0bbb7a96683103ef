"""Build time by backend: scripts/install.sh building llama-cpp-python from source, as a user's first install.

The CPU build is measured here: `scripts/install.sh --wheel-only` with an empty wheel cache (a temporary
XDG_CACHE_HOME), so it really builds; the figures are its own first-line estimate, the wall time, and how its
progress was shown (lines with the build's step counter). The CUDA build time is the issue's measurement on
an H200 machine (193 s with 16 jobs, `-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_CUDA_FA=OFF
-DLLAVA_BUILD=OFF`); bench/gpu_check.py measures it again where a GPU machine is lent.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run() -> str:
    with tempfile.TemporaryDirectory(prefix="oi-bench-build-") as folder:
        env = {**os.environ, "XDG_CACHE_HOME": folder}
        env.pop("CMAKE_ARGS", None)
        sdist = os.environ.get("LLAMA_CPP_SDIST")
        source = (f"`LLAMA_CPP_SDIST={Path(sdist).name}` (the slimmed sdist bench/gpu_check_prepare.sh makes: the same "
                  "compiled files)") if sdist else "the package index's sdist"
        load_before = os.getloadavg()[0]
        started = time.monotonic()
        done = subprocess.run(["bash", str(REPO / "scripts" / "install.sh"), "--cpu", "--wheel-only"], env=env,
                              capture_output=True, text=True, timeout=3600)
        seconds = time.monotonic() - started
        load_after = os.getloadavg()[0]
        lines = done.stdout.splitlines()
        if done.returncode != 0:
            return "## Build time by backend\n\nFAILED: install.sh exited with " + str(done.returncode) + ":\n\n```\n" + \
                "\n".join((done.stdout + done.stderr).splitlines()[-20:]) + "\n```"
        first = next(line for line in lines if "building llama-cpp-python" in line)
        estimate = re.search(r"about (\d+) (seconds|minutes)", first)
        estimated = int(estimate.group(1)) * (60 if estimate.group(2) == "minutes" else 1)
        progress = [line for line in lines if re.search(r"\d+% \(compiling", line)]
        record = json.loads((Path(lines[-1]).parent / "build.json").read_text())
    return "\n".join([
        "## Build time by backend (scripts/install.sh)",
        "",
        "Command: `XDG_CACHE_HOME=<empty temporary folder> scripts/install.sh --cpu --wheel-only` (llama-cpp-python "
        f"{record['version']} from source, CMAKE_ARGS=\"{record['cmake_args']}\", {record['jobs']} jobs; source: "
        f"{source}). The first build line, as printed:",
        "",
        f"> {first}",
        "",
        "| backend | where | jobs | estimated (first line) | measured | progress lines shown |",
        "|---|---|---|---|---|---|",
        f"| CPU (portable) | this machine, measured now (1-min load average {load_before:.1f} before, {load_after:.1f} after) "
        f"| {record['jobs']} | {estimated} s | {seconds:.0f} s (build.json: {record['build_seconds']} s) | {len(progress)} |",
        "| CUDA sm_90, FlashAttention kernels off | the issue's H200 machine (16 cores), not measured here | 16 | "
        "193 s (install.sh's default for CUDA) | 193 s (the issue) | not measured |",
        "",
        "Without a terminal, install.sh prints one progress line per 10 % of the build's own step counter (ninja's "
        "`[n/N]`); on a terminal it redraws one bar in place. The next build of the same backend on this machine "
        "estimates from this one's recorded time (build.json: build_seconds x jobs).",
    ])


if __name__ == "__main__":
    print(run())
