"""The providers' shared parts: loopback probes, URL handling, and a started child that never outlives us."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from oi_local.errors import OiLocalError
from oi_local.files import format_bytes
from oi_local.providers import base
from oi_local.serving.ports import free_port


def test_probe_of_a_closed_port_fails_fast_as_oserror():
    started = time.monotonic()
    with pytest.raises(OSError):
        base.openai_models(f"http://127.0.0.1:{free_port()}/v1")
    assert time.monotonic() - started < 5


def test_urls_are_checked_and_never_need_a_lookup():
    assert base.normalize_base_url("http://localhost:1234") == "http://127.0.0.1:1234/v1"
    assert base.normalize_base_url("http://[::1]:8080/v1") == "http://[::1]:8080/v1"
    with pytest.raises(OiLocalError, match="not an http"):
        base.split_base_url("localhost:1234")


def test_human_size():
    assert format_bytes(None) == "size unknown"
    assert format_bytes(999) == "999 B"
    assert format_bytes(94_000_000) == "94.0 MB"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie left for init to reap counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("how", ["exit", "sigterm"])
def test_managed_child_is_stopped_when_we_exit_or_get_sigterm(tmp_path, how):
    code = (
        "import sys, time; from pathlib import Path; from oi_local.serving.process import ManagedChild\n"
        f"c = ManagedChild(['sleep', '120'], log_path=Path(r'{tmp_path}') / 'child.log')\n"
        "print(c.pid, flush=True)\n"
        + ("time.sleep(120)\n" if how == "sigterm" else "sys.stdin.readline()\n")
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    child_pid = int(proc.stdout.readline())
    assert _alive(child_pid)
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)
    else:
        proc.stdin.write("exit\n")
        proc.stdin.close()
    proc.wait(30)
    deadline = time.monotonic() + 10
    while _alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child_pid)
    if how == "sigterm":
        assert proc.returncode == -signal.SIGTERM
