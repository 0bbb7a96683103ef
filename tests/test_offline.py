"""Offline means offline: a full one-shot `interpreter --local` run, once the model is on disk, opens no socket
to a non-loopback address and looks up no name, in this process and in every Python child it starts (the
llama.cpp server included). Proven twice: with an audit hook, and inside a network namespace with only `lo`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from local_support import INTERPRETER, base_env
from namespace_support import can_unshare, loopback_only

AUDIT_DIR = Path(__file__).resolve().parent / "offline_audit"
TASK = "Reply with one word: hello"


@pytest.fixture(scope="module")
def home_with_model(tmp_path_factory, test_model_path):
    """An app home where the test model is on disk, put there by the store from its PyPI source."""
    home = tmp_path_factory.mktemp("offline") / "home"
    code = (
        "from oi_local.models import catalog; from oi_local.machine.paths import app_paths; from oi_local.models.store import ModelStore;"
        "entries = catalog.load(); p = app_paths().ensure();"
        "print(ModelStore(p.models, entries).ensure(catalog.find(entries, 'smollm2-135m'), progress=False).path)"
    )
    result = subprocess.run([str(INTERPRETER.parent / "python"), "-c", code], env=base_env(home), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip().splitlines()[-1]).exists()
    return home


def audited_env(home: Path, audit_file: Path) -> dict[str, str]:
    env = base_env(home, PYTHONPATH=str(AUDIT_DIR), OI_AUDIT_FILE=str(audit_file))
    # Nothing preset that would hide a lookup: the product must set these itself.
    for name in ("LITELLM_LOCAL_MODEL_COST_MAP", "HF_ENDPOINT", "HF_HUB_OFFLINE"):
        env.pop(name, None)
    return env


def command() -> list[str]:
    return [str(INTERPRETER), "--local", "--provider", "llamacpp", "--model", "smollm2-135m", "-y", TASK]


def read_audit(audit_file: Path) -> tuple[list[dict], list[dict]]:
    records = [json.loads(line) for line in audit_file.read_text().splitlines() if line.strip()]
    starts = [r for r in records if r["event"] == "start"]
    attempts = [r for r in records if r["event"] != "start"]
    return starts, attempts


def assert_clean_run(result: subprocess.CompletedProcess, audit_file: Path) -> None:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Model smollm2-135m via llama.cpp (built in, GGUF) at http://127.0.0.1:" in result.stdout
    starts, attempts = read_audit(audit_file)
    argvs = [" ".join(s["argv"]) for s in starts]
    # The audit really covered the program and the server it started.
    assert any("interpreter" in a for a in argvs), argvs
    assert any("llama_cpp.server" in a for a in argvs), argvs
    assert attempts == [], f"non-loopback network attempts: {attempts}"


def test_audit_hook_sees_no_network_attempt(home_with_model, tmp_path):
    audit_file = tmp_path / "audit.jsonl"
    result = subprocess.run(command(), env=audited_env(home_with_model, audit_file), stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=240)
    assert_clean_run(result, audit_file)


def test_the_audit_hook_can_fail(tmp_path):
    """The same hook records a lookup and a connect to a public address (so zero above means something)."""
    audit_file = tmp_path / "audit.jsonl"
    code = (
        "import socket\n"
        "try: socket.getaddrinfo('example.com', 443)\nexcept OSError: pass\n"
        "s = socket.socket(); s.settimeout(0.01)\n"
        "try: s.connect(('192.0.2.1', 9))\nexcept OSError: pass\n"
        "socket.getaddrinfo('127.0.0.1', 80)\n"
    )
    subprocess.run([str(INTERPRETER.parent / "python"), "-c", code], env=audited_env(tmp_path, audit_file), check=True, timeout=60)
    _, attempts = read_audit(audit_file)
    assert [(a["event"], a["host"]) for a in attempts] == [("socket.getaddrinfo", "example.com"), ("socket.connect", "192.0.2.1")]


def test_runs_in_a_network_namespace_with_only_loopback(home_with_model, tmp_path):
    reason = can_unshare()
    if reason:
        pytest.skip(reason)
    audit_file = tmp_path / "audit.jsonl"
    result = subprocess.run(
        loopback_only(command()),
        env=audited_env(home_with_model, audit_file), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=240,
    )
    assert_clean_run(result, audit_file)
