"""What the computer tests share: one Computer per module, a private scratch folder, output text, timeouts.

A test module takes the fixtures as its own names (`computer = computer_support.computer`), which pytest
finds and ruff does not read as a redefined import where a test asks for them as arguments.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from oi_local.computer import Computer

DEFAULT_TIMEOUT = 300


@pytest.fixture(scope="module")
def computer():
    computer = Computer()
    yield computer
    computer.terminate()


@pytest.fixture
def scratch():
    """A private folder (not pytest's tmp_path: parallel pytest sessions on one machine prune each other's)."""
    folder = Path(tempfile.mkdtemp(prefix="oi-local-test-computer-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def text(chunks) -> str:
    return "".join(c["content"] for c in chunks if c.get("type") == "console" and c.get("format") == "output")


def output_with_timeout(computer: Computer, language: str, code: str, seconds: float = 1) -> str:
    """The output text of one run under `computer.timeout = seconds`; the default timeout is put back after."""
    computer.timeout = seconds
    try:
        return text(computer.run(language, code))
    finally:
        computer.timeout = DEFAULT_TIMEOUT


def stopped_once_seen(computer: Computer, language: str, code: str, marker: str) -> list[dict]:
    """Stream one run, calling computer.stop() from another thread once output shows `marker`; its chunks."""
    chunks = []
    for chunk in computer.run(language, code, stream=True):
        chunks.append(chunk)
        if chunk.get("format") == "output" and marker in chunk["content"]:
            threading.Thread(target=computer.stop).start()
    return chunks
