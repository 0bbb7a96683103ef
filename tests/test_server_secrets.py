"""Issue 12, secrets and local attackers: another user of the machine cannot find a server's API key (not in
any command line, not in its environment, not in its log) and cannot use the model without it; the files a
server leaves are the user's own (0600); a full disk while writing a server log is one clear paragraph."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from oi_local.files import FileWriteError
from oi_local.machine.paths import app_paths
from oi_local.models.fit import Fit
from oi_local.serving.runners import llamacpp, llamafile

pytestmark = pytest.mark.server

FIT = Fit(fits=True, n_ctx=2048, n_gpu_layers=0, max_tokens=256, weights_bytes=0, kv_cache_bytes=0,
          compute_bytes=0, total_bytes=0, available_bytes=None, reason="test")
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _root_with(*programs: str) -> str | None:
    """Why a test that needs root and these programs cannot run here (None when it can)."""
    if os.name != "posix" or os.geteuid() != 0:
        return "needs root (to create a second user or mount a tmpfs); run the suite as root to cover this"
    missing = [p for p in programs if shutil.which(p) is None]
    return f"needs {', '.join(missing)}" if missing else None


@pytest.fixture(scope="module")
def other_user():
    """A second OS user for the duration of this module (created as root; skipped otherwise)."""
    reason = _root_with("useradd", "userdel", "runuser")
    if reason:
        pytest.skip(reason)
    name = f"oih12{secrets.token_hex(3)}"
    done = subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", name], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"useradd failed: {done.stderr.strip()}")
    try:
        yield name
    finally:
        subprocess.run(["userdel", "--force", name], capture_output=True)


def as_user(user: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", user, "--", "sh", "-c", command], capture_output=True, text=True,
                          timeout=60, cwd="/")


@pytest.fixture
def home(tmp_path):
    return app_paths({"OI_LOCAL_HOME": str(tmp_path / "home")}).ensure()


def _assert_key_hidden_from(user: str, server) -> None:
    key = server.endpoint.api_key
    pids = [server.pid] + ([server.process.pid] if server.process is not None else [])
    seen = as_user(user, f"cat /proc/{server.pid}/cmdline | tr '\\0' ' '")
    assert "--model" in seen.stdout, seen  # the other user does see the server's command line ...
    assert key not in seen.stdout  # ... but not the key
    everything = as_user(user, "ps -eo args; cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '")
    assert server.endpoint.model_id in everything.stdout and key not in everything.stdout
    for pid in pids:
        environ = as_user(user, f"cat /proc/{pid}/environ")
        assert environ.returncode != 0 and key not in environ.stdout  # only its owner reads a process's environment
    url = f"{server.endpoint.api_base}/models"
    refused = as_user(user, f"curl -s -o /dev/null -w '%{{http_code}}' {url}")
    wrong = as_user(user, f"curl -s -o /dev/null -w '%{{http_code}}' -H 'Authorization: Bearer oi-guess' {url}")
    assert refused.stdout == "401" and wrong.stdout == "401"


def test_llamacpp_key_is_not_visible_to_another_user(other_user, test_model_path, home):
    if shutil.which("curl") is None:
        pytest.skip("needs curl")
    model_id = f"h12-key-{secrets.token_hex(3)}"
    with llamacpp.start(test_model_path, FIT, paths=home, model_id=model_id, progress=False) as server:
        _assert_key_hidden_from(other_user, server)
        assert server.endpoint.api_key not in server.log_path.read_text(errors="replace")
        assert all(server.endpoint.api_key not in part for part in server.command)


def test_llamafile_key_travels_in_a_private_file_that_is_gone_once_ready(other_user, tmp_path, home, monkeypatch,
                                                                         test_model_path):
    if shutil.which("curl") is None:
        pytest.skip("needs curl")
    monkeypatch.setenv("FAKE_LLAMAFILE_PYTHON", sys.executable)
    monkeypatch.setenv("FAKE_LLAMAFILE_MODEL", str(test_model_path))
    path = tmp_path / "smol.llamafile"
    path.write_text((FIXTURES / "fake_llamafile.sh").read_text())
    path.chmod(0o755)
    with llamafile.start(path, FIT, paths=home, model_id=f"h12-lf-{secrets.token_hex(3)}", verified=True,
                         progress=False) as server:
        flag = server.command.index("--api-key-file")
        key_file = Path(server.command[flag + 1])
        assert key_file.parent == home.state / "keys" and stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
        assert not key_file.exists()  # read when the server started, removed once it answered
        _assert_key_hidden_from(other_user, server)


def test_server_log_and_state_files_are_the_users_own(test_model_path, home):
    model_id = f"h12-mode-{secrets.token_hex(3)}"
    with llamacpp.start(test_model_path, FIT, paths=home, model_id=model_id, progress=False) as server:
        state_files = [home.state / "servers.json", *home.state.glob("*.lock")]
        for path in [server.log_path, *state_files]:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        # what the log trimmer rolls over is private as well
        from oi_local.serving.logs import trim

        with open(server.log_path, "ab") as log:
            log.write(b"x" * 20_000 + b"\n")
        assert trim(server.log_path, max_bytes=10_000)
        rolled = server.log_path.with_name(server.log_path.stem + ".1.log")
        assert stat.S_IMODE(rolled.stat().st_mode) == 0o600


def test_environment_cannot_override_the_servers_host_or_key(test_model_path, home, monkeypatch):
    """uvicorn takes HOST over --host, and CONFIG_FILE replaces every flag (a server without a key)."""
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("API_KEY", "users-own-variable")
    monkeypatch.setenv("CONFIG_FILE", str(home.config / "nothing-here.json"))
    with llamacpp.start(test_model_path, FIT, paths=home, model_id=f"h12-env-{secrets.token_hex(3)}",
                        progress=False) as server:
        listening = [c.laddr.ip for c in psutil.Process(server.pid).net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN]
        assert listening == ["127.0.0.1"] and server.endpoint.api_key != "users-own-variable"
        assert server.healthy()


# ------------------------------------------------------------------------------------------ a full disk

@contextlib.contextmanager
def small_tmpfs(where: Path, size: str = "256k"):
    reason = _root_with("mount", "umount")
    if reason:
        pytest.skip(reason)
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(folder: Path) -> None:
    with contextlib.suppress(OSError), open(folder / "filler", "wb", buffering=0) as out:
        while True:
            out.write(b"\0" * 4096)
            out.flush()


def _no_temporary_files(*folders: Path) -> list[str]:
    return [p.name for folder in folders for p in folder.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".")]


def test_full_disk_for_the_server_log_is_one_paragraph(test_model_path, home):
    model_id = f"h12-full-{secrets.token_hex(3)}"
    with small_tmpfs(home.logs):
        fill(home.logs)
        with pytest.raises(FileWriteError) as caught:
            llamacpp.start(test_model_path, FIT, paths=home, model_id=model_id, progress=False)
        message = str(caught.value)
        assert "No space left on device" in message and "Free some disk space" in message
        assert "no server was started" in message and "\n" not in message
        assert _no_temporary_files(home.logs, home.state) == []
        assert sorted(p.name for p in home.logs.iterdir()) == ["filler"]  # no empty log left either
        assert not any(model_id in " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"]))


def test_full_disk_for_the_state_file_is_one_paragraph(test_model_path, home):
    with small_tmpfs(home.state):
        fill(home.state)
        with pytest.raises(FileWriteError) as caught:
            llamacpp.start(test_model_path, FIT, paths=home, model_id=f"h12-st-{secrets.token_hex(3)}", progress=False)
        assert "No space left on device" in str(caught.value)
        assert _no_temporary_files(home.state) == []


def test_cli_serve_on_a_full_disk_prints_the_paragraph_without_traceback(test_model_path, tmp_path):
    home = app_paths({"OI_LOCAL_HOME": str(tmp_path / "home")}).ensure()
    with small_tmpfs(home.logs):
        fill(home.logs)
        env = {**os.environ, "OI_LOCAL_HOME": str(tmp_path / "home")}
        done = subprocess.run([sys.executable, "-m", "oi_local.face.cli", "serve", str(test_model_path)], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode != 0
        assert "Traceback" not in done.stderr + done.stdout
        assert done.stderr.startswith("Error: Could not write") and "No space left on device" in done.stderr
        assert _no_temporary_files(home.logs, home.state) == []
