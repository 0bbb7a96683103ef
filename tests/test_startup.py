"""`interpreter --version` and `--help` must not import the heavy libraries (they take seconds to import)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# rich too: importing it costs several times a bare Python start (bench/bench_startup.py)
HEAVY = ("litellm", "llama_cpp", "jupyter_client", "huggingface_hub", "ipykernel", "openai", "questionary", "rich")

PROBE = """
import json, sys
from oi_local.face.cli import main
try:
    code = main({argv!r})
except SystemExit as exit:
    code = exit.code
print("@@MODULES@@" + json.dumps(sorted(sys.modules)))
sys.exit(code or 0)
"""


def modules_after(argv: list[str]) -> tuple[str, list[str]]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    output, _, modules = result.stdout.partition("@@MODULES@@")
    return output, json.loads(modules)


def heavy_in(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] in HEAVY]


@pytest.mark.parametrize(
    "argv",
    [["--version"], ["--help"], ["-h"], ["hardware", "--help"], ["models", "--help"], ["serve", "--help"]],
)
def test_version_and_help_import_nothing_heavy(argv):
    output, modules = modules_after(argv)
    assert output.strip(), "the command printed nothing"
    assert heavy_in(modules) == []
    assert "oi_local.agent.core" not in modules and "oi_local.terminal" not in modules


def test_version_prints_the_package_version():
    from oi_local import __version__

    output, _ = modules_after(["--version"])
    assert output.strip() == f"oi_local {__version__}"


def test_help_lists_the_terminal_flags():
    output, _ = modules_after(["--help"])
    for flag in ("--model", "--api_base", "--profile", "--profiles", "--auto_run", "--multi_line", "--plain",
                 "--conversations", "--safe_mode", "--no-llm_supports_functions", "--local"):
        assert flag in output


def test_the_probe_sees_a_heavy_import(tmp_path):
    """The check can fail: importing one of the heavy modules on the way shows up in sys.modules."""
    result = subprocess.run(
        [sys.executable, "-c", "import sys, jupyter_client; print('@@MODULES@@' + __import__('json').dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, timeout=60,
    )
    modules = json.loads(result.stdout.partition("@@MODULES@@")[2])
    assert "jupyter_client" in heavy_in(modules)


def test_installed_console_script_version():
    """The real console script, as a user runs it."""
    from pathlib import Path

    script = Path(sys.executable).with_name("interpreter")
    if not script.exists():
        pytest.skip("no console script next to this Python")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("oi_local ")
