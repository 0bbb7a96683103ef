"""The runners' commands, and the llamafile runner against a stand-in llamafile that execs the real server."""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import stat
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from oi_local.errors import OiLocalError
from oi_local.files import sha256_file
from oi_local.machine.paths import app_paths
from oi_local.models.fit import Fit
from oi_local.serving.runners import llamacpp, llamafile

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIT = Fit(fits=True, n_ctx=2048, n_gpu_layers=0, max_tokens=256, weights_bytes=0, kv_cache_bytes=0,
          compute_bytes=0, total_bytes=0, available_bytes=None, reason="test")


@pytest.fixture
def home(tmp_path):
    return app_paths({"OI_LOCAL_HOME": str(tmp_path / "home")}).ensure()


@pytest.fixture
def stand_in_env(monkeypatch, test_model_path):
    monkeypatch.setenv("FAKE_LLAMAFILE_PYTHON", sys.executable)
    monkeypatch.setenv("FAKE_LLAMAFILE_MODEL", str(test_model_path))


def make_llamafile(folder: Path, *, first_line: str | None = None, executable: bool = True) -> Path:
    """A copy of the stand-in, optionally with another interpreter line, optionally without the exec bit."""
    text = (FIXTURES / "fake_llamafile.sh").read_text()
    if first_line is not None:
        text = first_line + "\n" + text.split("\n", 1)[1]
    path = folder / f"smol-{secrets.token_hex(3)}.llamafile"
    path.write_text(text)
    path.chmod(0o755 if executable else 0o644)
    return path


def chat(server) -> str:
    ep = server.endpoint
    reply = httpx.post(f"{ep.api_base}/chat/completions", headers={"Authorization": f"Bearer {ep.api_key}"},
                       json={"model": ep.model_id, "max_tokens": 8, "temperature": 0,
                             "messages": [{"role": "user", "content": "Say hi."}]}, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()["choices"][0]["message"]["content"]


def assert_gone(pid: int) -> None:
    try:
        assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        pass


# ------------------------------------------------------------------------------------------ commands

# Changed with issue 12: the API key is no longer on the command line (any local user can read argv); the
# llama.cpp server gets it in its environment (API_KEY), a llamafile in a 0600 file (--api-key-file, added by
# start_server). And the llama.cpp server, which may be shared by several runs, no longer cuts a streamed reply
# short when another request arrives (--interrupt_requests False).
def test_llamacpp_command_has_every_setting(test_model_path):
    argv = llamacpp.command(test_model_path, FIT, model_id="smol", host="127.0.0.1", port=4321, threads=3)
    assert argv[:3] == [sys.executable, "-m", "llama_cpp.server"]
    pairs = dict(zip(argv[3::2], argv[4::2], strict=False))
    assert pairs == {"--model": str(test_model_path), "--model_alias": "smol", "--host": "127.0.0.1",
                     "--port": "4321", "--n_ctx": "2048", "--n_gpu_layers": "0", "--n_threads": "3",
                     "--n_threads_batch": "3", "--logits_all": "False", "--interrupt_requests": "False"}
    assert "--chat_format" not in argv  # the GGUF's own template is used
    assert llamacpp.command(test_model_path, FIT, model_id="s", host="127.0.0.1", port=1, threads=1,
                            chat_format="chatml")[-2:] == ["--chat_format", "chatml"]
    cpu_fit = dataclasses.replace(FIT, flash_attn=True, kv_type="q8_0")  # what the fit chose is what is passed
    argv = llamacpp.command(test_model_path, cpu_fit, model_id="s", host="127.0.0.1", port=1, threads=1)
    pairs = dict(zip(argv[3::2], argv[4::2], strict=False))
    assert (pairs["--flash_attn"], pairs["--type_k"], pairs["--type_v"]) == ("True", "8", "8")


def test_llamafile_command_uses_llamafile_flags(tmp_path):
    argv = llamafile.command(["/m.llamafile"], FIT, model_id="smol", host="127.0.0.1", port=4321, threads=2)
    assert argv == ["/m.llamafile", "--server", "--nobrowser", "--host", "127.0.0.1", "--port", "4321", "-c",
                    "2048", "-ngl", "0", "--alias", "smol", "-t", "2"]
    assert llamafile.command(["llamafile.exe"], FIT, model_id="s", host="127.0.0.1", port=1,
                             weights=Path("m.gguf"))[-2:] == ["-m", "m.gguf"]


def test_windows_refuses_a_llamafile_over_4gb_and_explains_external_weights(tmp_path, home):
    big = tmp_path / "big.llamafile"
    with open(big, "wb") as f:  # sparse: no real disk used
        f.truncate(4 * 1024**3 + 1)
    assert llamafile.windows_size_problem(big, big.stat().st_size, os_name="posix") is None
    assert llamafile.windows_size_problem(big, 3 * 1024**3, os_name="nt") is None
    with pytest.raises(OiLocalError) as caught:
        llamafile.start(big, FIT, paths=home, model_id="big", verified=True, os_name="nt", progress=False)
    assert "4 GB" in str(caught.value) and "-m model.gguf" in str(caught.value)
    assert llamafile.windows_size_problem(big, big.stat().st_size, os_name="nt", weights=Path("m.gguf")) is None


def test_unverified_or_mismatching_llamafile_is_not_executed(tmp_path, home):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.llamafile"
    path.write_text(f"#!/bin/sh\ntouch {marker}\n")
    path.chmod(0o755)
    with pytest.raises(OiLocalError, match="not been verified"):
        llamafile.start(path, FIT, paths=home, model_id="evil", progress=False)
    with pytest.raises(OiLocalError, match="does not match its catalog checksum"):
        llamafile.start(path, FIT, paths=home, model_id="evil", expected_sha256="0" * 64, progress=False)
    assert not marker.exists()
    with pytest.raises(OiLocalError, match="does not exist"):
        llamafile.start(tmp_path / "nothing.llamafile", FIT, paths=home, model_id="x", verified=True)


# ------------------------------------------------------------------------------------------ the stand-in

@pytest.mark.server
def test_llamafile_runner_serves_through_the_stand_in(tmp_path, home, stand_in_env):
    path = make_llamafile(tmp_path)
    model_id = f"h3-llamafile-{secrets.token_hex(3)}"
    server = llamafile.start(path, FIT, paths=home, model_id=model_id, expected_sha256=sha256_file(path).hexdigest(),
                             progress=False)
    try:
        ep = server.endpoint
        assert ep.provider == "llamafile" and ep.api_base.startswith("http://127.0.0.1:")
        assert server.command[0] == str(path)  # executed directly
        assert httpx.get(f"{ep.api_base}/models").status_code == 401
        models = httpx.get(f"{ep.api_base}/models", headers={"Authorization": f"Bearer {ep.api_key}"}).json()
        assert [m["id"] for m in models["data"]] == [model_id]
        assert chat(server).strip()
        assert "fake llamafile: serving" in ep.log_path.read_text()
        again = llamafile.start(path, FIT, paths=home, model_id=model_id, verified=True, progress=False)
        assert again.reused and again.pid == server.pid
    finally:
        server.stop()
    assert_gone(server.pid)


@pytest.mark.server
def test_binfmt_interception_is_retried_through_sh(tmp_path, home, stand_in_env):
    # the interpreter line plays the kernel's binfmt_misc handing the file to run-detectors, which gives up
    path = make_llamafile(tmp_path, first_line=f"#!{FIXTURES / 'fake_run_detectors'}")
    assert os.access(FIXTURES / "fake_run_detectors", os.X_OK)
    server = llamafile.start(path, FIT, paths=home, model_id="h3-binfmt", verified=True, progress=False)
    try:
        assert server.command[:2] == ["sh", str(path)]
        assert chat(server).strip()
        first_try = server.log_path.with_name(server.log_path.stem + ".1.log").read_text()
        assert "run-detectors: unable to find an interpreter" in first_try and "retrying through sh" in first_try
    finally:
        server.stop()
    assert_gone(server.pid)


@pytest.mark.server
def test_file_without_exec_permission_runs_through_sh(tmp_path, home, stand_in_env):
    path = make_llamafile(tmp_path, executable=False)
    assert not path.stat().st_mode & stat.S_IXUSR
    with llamafile.start(path, FIT, paths=home, model_id="h3-noexec", verified=True, progress=False) as server:
        assert server.command[0] == "sh" and server.healthy()
    assert_gone(server.pid)
    assert shutil.which("sh")
