"""ManagedServer and the llama.cpp runner, against the real llama.cpp server and the real test model."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import psutil
import pytest
from tmux_driver import Tmux

from oi_local.errors import OiLocalError
from oi_local.machine.paths import app_paths
from oi_local.models.fit import Fit
from oi_local.serving.logs import rotate, tail, trim
from oi_local.serving.options import ServerOptions, ServerSpec
from oi_local.serving.runners import llamacpp
from oi_local.serving.server import ManagedServer, ServerError, diagnose, start_server
from oi_local.serving.state import ServerKey, ServerRecord, ServerState

pytestmark = pytest.mark.server

FIT = Fit(fits=True, n_ctx=2048, n_gpu_layers=0, max_tokens=256, weights_bytes=0, kv_cache_bytes=0,
          compute_bytes=0, total_bytes=0, available_bytes=None, reason="test")
REPO = Path(__file__).resolve().parent.parent


def unique_id(tag: str) -> str:
    return f"h3-{tag}-{secrets.token_hex(3)}"


def processes_with(text: str) -> list[psutil.Process]:
    """Live processes whose command line mentions `text` (a model alias unique to one test)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if any(text in part for part in proc.info["cmdline"] or ()):
                found.append(proc)
        except psutil.Error:
            continue
    return [p for p in found if p.pid != os.getpid()]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(text: str, timeout: float = 15.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = processes_with(text)
        if not left:
            return []
        time.sleep(0.1)
    return processes_with(text)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return app_paths({"OI_LOCAL_HOME": str(tmp_path_factory.mktemp("h3_home"))}).ensure()


@pytest.fixture(scope="module")
def server(test_model_path, home):
    model_id = unique_id("shared")
    managed = llamacpp.start(test_model_path, FIT, paths=home, model_id=model_id, progress=False)
    yield managed
    managed.stop()


# ------------------------------------------------------------------------------------------ the shared server

def test_endpoint_describes_a_loopback_server_with_a_key(server: ManagedServer, home):
    ep = server.endpoint
    assert ep.api_base == f"http://127.0.0.1:{server.port}/v1"
    assert ep.provider == "llamacpp" and ep.pid == server.pid and server.healthy()
    assert ep.context_window == FIT.n_ctx and ep.max_tokens == FIT.max_tokens
    assert ep.api_key and len(ep.api_key) >= 24
    assert ep.log_path is not None and ep.log_path.parent == home.logs
    assert "llama_model_loader" in ep.log_path.read_text(errors="replace")
    # the chat template comes from the GGUF: llama-cpp-python says so in its log
    assert "Using gguf chat template" in ep.log_path.read_text(errors="replace")
    assert ep.api_key not in ep.log_path.read_text(errors="replace").splitlines()[0]
    listening = [c for c in psutil.Process(server.pid).net_connections("tcp") if c.status == psutil.CONN_LISTEN]
    assert [c.laddr.ip for c in listening] == ["127.0.0.1"]
    assert os.getsid(server.pid) == server.pid  # its own session: a Ctrl-C in the terminal reaches us, not it


def test_streamed_chat_completion_through_litellm(server: ManagedServer):
    import litellm

    ep = server.endpoint
    stream = litellm.completion(
        model=ep.llm_model, api_base=ep.api_base, api_key=ep.api_key, stream=True, max_tokens=24,
        messages=[{"role": "user", "content": "Say hello to me."}], temperature=0,
    )
    text = "".join((chunk.choices[0].delta.content or "") for chunk in stream)
    assert text.strip()


def test_wrong_or_missing_key_is_refused(server: ManagedServer):
    base = server.endpoint.api_base
    body = {"model": server.endpoint.model_id, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    assert httpx.get(f"{base}/models").status_code == 401
    assert httpx.get(f"{base}/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.post(f"{base}/chat/completions", json=body).status_code == 401
    assert httpx.post(f"{base}/chat/completions", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = httpx.get(f"{base}/models", headers={"Authorization": f"Bearer {server.endpoint.api_key}"})
    assert ok.status_code == 200 and ok.json()["data"][0]["id"] == server.endpoint.model_id


def test_second_start_reuses_the_first_server(server: ManagedServer, test_model_path, home):
    again = llamacpp.start(test_model_path, FIT, paths=home, model_id=server.endpoint.model_id, progress=False)
    assert again.reused and again.pid == server.pid and again.endpoint.api_key == server.endpoint.api_key
    assert len(processes_with(server.endpoint.model_id)) == 1
    again.stop()  # a reused server belongs to its owner: stopping it here only detaches
    assert server.healthy()
    records = ServerState(home.state).live_records()
    assert [r.pid for r in records if r.key.model_id == server.endpoint.model_id] == [server.pid]


def test_fresh_start_and_different_settings_do_not_reuse(server: ManagedServer, test_model_path, home):
    import dataclasses

    fresh = llamacpp.start(test_model_path, FIT, paths=home, model_id=server.endpoint.model_id, reuse=False,
                           progress=False)
    other = llamacpp.start(test_model_path, dataclasses.replace(FIT, n_ctx=1024), paths=home,
                           model_id=server.endpoint.model_id, progress=False)
    try:
        assert not fresh.reused and fresh.pid != server.pid and fresh.healthy()
        assert not other.reused and other.pid not in (server.pid, fresh.pid)
    finally:
        fresh.stop()
        other.stop()
    assert gone(fresh.pid)
    assert server.healthy()


# ------------------------------------------------------------------------------------------ failures

def test_port_taken_by_another_listener_uses_another_port(test_model_path, home):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with llamacpp.start(test_model_path, FIT, paths=home, model_id=unique_id("port"), port=port,
                            reuse=False, progress=False) as managed:
            assert managed.port != port and managed.healthy()
            assert managed.endpoint.api_base.endswith(f":{managed.port}/v1")


def test_server_killed_mid_stream_gives_a_clear_error(test_model_path, home):
    import litellm

    managed = llamacpp.start(test_model_path, FIT, paths=home, model_id=unique_id("kill"), progress=False)
    ep = managed.endpoint
    received = []
    with pytest.raises(ServerError) as caught:
        with managed.guard():
            stream = litellm.completion(
                model=ep.llm_model, api_base=ep.api_base, api_key=ep.api_key, stream=True, max_tokens=1500,
                messages=[{"role": "user", "content": "Count from 1 to 1000, one number per line."}],
                timeout=60,
            )
            for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")
                if len(received) == 3:
                    os.kill(managed.pid, signal.SIGKILL)
    message = str(caught.value)
    assert len(received) >= 3
    assert f"pid {managed.pid}" in message and str(ep.log_path) in message and "SIGKILL" in message
    assert caught.value.log_path == ep.log_path
    assert isinstance(caught.value, OiLocalError)
    managed.stop()


def test_check_reports_a_dead_server(test_model_path, home):
    managed = llamacpp.start(test_model_path, FIT, paths=home, model_id=unique_id("check"), progress=False)
    managed.check()
    os.kill(managed.pid, signal.SIGKILL)
    managed.process.wait(10)
    with pytest.raises(ServerError, match="SIGKILL"):
        managed.check()
    assert not managed.healthy()
    managed.stop()


@pytest.mark.parametrize("kind", ["truncated", "not_gguf", "missing"])
def test_bad_model_file_is_a_clear_error_naming_the_file(kind, test_model_path, home, tmp_path):
    bad = tmp_path / f"{kind}.gguf"
    if kind == "truncated":
        bad.write_bytes(test_model_path.read_bytes()[: 40 * 1024 * 1024])
    elif kind == "not_gguf":
        bad.write_text("this is a text file, not a model\n" * 50)
    model_id = unique_id(kind)
    with pytest.raises(OiLocalError) as caught:
        llamacpp.start(bad, FIT, paths=home, model_id=model_id, progress=False)
    assert str(bad) in str(caught.value)
    assert not isinstance(caught.value, ServerError)  # the file check, not a crashed server
    assert wait_gone(model_id) == []


@pytest.mark.parametrize("kind", ["truncated", "not_gguf"])
def test_cli_serve_bad_file_prints_the_error_without_traceback(kind, test_model_path, tmp_path):
    bad = tmp_path / f"{kind}.gguf"
    if kind == "truncated":
        bad.write_bytes(test_model_path.read_bytes()[: 40 * 1024 * 1024])
    else:
        bad.write_bytes(b"PK\x03\x04 not a gguf at all" * 100)
    env = {**os.environ, "OI_LOCAL_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "oi_local.face.cli", "serve", str(bad)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    assert str(bad) in done.stderr and done.stderr.startswith("Error:")


def _start_failing(command: list[str], home, model_path: Path, *, timeout: float | None = None) -> ServerError:
    spec = ServerSpec(runner="llamacpp", build_command=lambda port: command, model_path=model_path,
                      model_id=unique_id("fail"), fit=FIT)
    with pytest.raises(ServerError) as caught:
        start_server(spec, home, ServerOptions(reuse=False, timeout=timeout, progress=False))
    return caught.value


def test_early_exit_reports_the_log_and_the_cause(test_model_path, home):
    error = _start_failing([sys.executable, "-m", "llama_cpp.server", "--model", str(test_model_path),
                            "--no_such_flag"], home, test_model_path)
    assert error.returncode == 2 and "unrecognized arguments" in str(error) and str(error.log_path) in str(error)


def test_sigill_says_how_to_rebuild(home, test_model_path):
    error = _start_failing([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGILL)"],
                           home, test_model_path)
    assert error.kind == "sigill" and 'CMAKE_ARGS="-DGGML_NATIVE=OFF"' in str(error)


def test_missing_shared_library_is_named(home, test_model_path):
    error = _start_failing([sys.executable, "-c", "import ctypes; ctypes.CDLL('libh3_not_there.so.1')"],
                           home, test_model_path)
    assert error.kind == "shared_library" and "libh3_not_there.so.1" in str(error)


def test_server_that_never_answers_times_out_and_is_stopped(home, test_model_path):
    marker = unique_id("mute")
    error = _start_failing([sys.executable, "-c", f"import time; time.sleep(600)  # {marker}"], home,
                           test_model_path, timeout=1.5)
    assert error.kind == "timeout"
    assert wait_gone(marker) == []


@pytest.mark.parametrize(
    ("lines", "code", "kind"),
    [
        (["ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size 17179869184"], 1, "oom"),
        (["ERROR:    [Errno 98] error while attempting to bind on address ('127.0.0.1', 8080): address already in use"], 1, "port_taken"),
        (["llama_model_load: error loading model: invalid magic characters"], 1, "bad_model"),
        (["/usr/bin/python: error while loading shared libraries: libllama.so: cannot open shared object file"], 127, "shared_library"),
        (["run-detectors: unable to find an interpreter for ./x.llamafile"], 2, "binfmt"),
        ([], -4, "sigill"),
        ([], -9, "crashed"),
    ],
)
def test_diagnosis_of_known_causes(lines, code, kind):
    assert diagnose(code, lines, port=8080)[0] == kind


# ------------------------------------------------------------------------------------------ stopping

LAUNCHER = textwrap.dedent("""
    import json, signal, sys, time
    from pathlib import Path
    from oi_local.models.fit import Fit
    from oi_local.machine.paths import app_paths
    from oi_local.serving.runners import llamacpp

    model, home, model_id, mode = sys.argv[1:5]
    if mode == "chained":
        def previous(signum, frame):
            Path(home, "previous-handler-ran").write_text("yes")
            sys.exit(3)
        signal.signal(signal.SIGTERM, previous)
    fit = Fit(True, 2048, 0, 256, 0, 0, 0, 0, None, "test")
    server = llamacpp.start(Path(model), fit, paths=app_paths({"OI_LOCAL_HOME": home}), model_id=model_id,
                            progress=False)
    print(json.dumps({"pid": server.pid, "port": server.port}), flush=True)
    while True:
        time.sleep(0.2)
""")


@pytest.mark.parametrize(("sig", "mode"), [(signal.SIGINT, "plain"), (signal.SIGTERM, "plain"),
                                           (signal.SIGTERM, "chained")])
def test_launcher_stopped_by_signal_leaves_no_server(sig, mode, test_model_path, tmp_path):
    model_id = unique_id(f"launcher-{sig.name}")
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(test_model_path), str(tmp_path), model_id, mode],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        line = launcher.stdout.readline()
        assert line, launcher.stderr.read()
        info = json.loads(line)
        assert psutil.pid_exists(info["pid"]) and processes_with(model_id)
        launcher.send_signal(sig)
        launcher.wait(30)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert gone(info["pid"])
    assert wait_gone(model_id, timeout=5) == []
    if mode == "chained":
        assert (tmp_path / "previous-handler-ran").read_text() == "yes" and launcher.returncode == 3
    elif sig == signal.SIGTERM:
        assert launcher.returncode == -signal.SIGTERM


# Changed with issue 12: a `kill -9` of the launcher no longer leaves its server behind (its watchdog stops it:
# tests/test_server_lifetime.py), so the orphan this test used to make that way no longer exists. The cleanup
# of older orphans stays, for servers no watchdog looks after (a record of an older version, or a watchdog
# killed where there is no parent-death signal): such a server, really running, is stopped by the next start.
def test_orphan_of_a_killed_launcher_is_stopped_by_the_next_start(test_model_path, tmp_path):
    from conftest import start_raw_server

    model_id = unique_id("orphan")
    home = app_paths({"OI_LOCAL_HOME": str(tmp_path)}).ensure()
    raw = start_raw_server(test_model_path, api_key="k", model_id=model_id)
    orphan = raw.process.pid
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    key = ServerKey.for_file("llamacpp", test_model_path, model_id=model_id, n_ctx=FIT.n_ctx,
                             n_gpu_layers=FIT.n_gpu_layers, host="127.0.0.1",
                             extra_args=("threads=auto",))
    ServerState(home.state).add(ServerRecord(key, orphan, psutil.Process(orphan).create_time(), raw.port, "k",
                                             dead.pid, 1.0, str(tmp_path / "old.log")))
    try:
        assert psutil.pid_exists(orphan)
        with llamacpp.start(test_model_path, FIT, paths=home, model_id=model_id, progress=False) as fresh:
            assert not fresh.reused and fresh.pid != orphan
            assert gone(orphan)
        assert wait_gone(model_id) == []
    finally:
        raw.stop()


@pytest.mark.parametrize("by", ["path", "catalog_id"])
def test_cli_serve_prints_endpoint_and_stops_on_ctrl_c(by, test_model_path, tmp_path):
    env = {**os.environ, "OI_LOCAL_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    model = str(test_model_path) if by == "path" else "smollm2-135m"  # the catalog's entry for the test model
    proc = subprocess.Popen([sys.executable, "-m", "oi_local.face.cli", "serve", model, "-c", "1024"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            out.append(line)
            if "Ctrl-C" in line:
                break
        text = "".join(out)
        assert "Server ready" in text, text + proc.stderr.read()
        assert "1024 tokens" in text
        key = next(line.split("Bearer ")[1].split("'")[0] for line in out if "Bearer " in line)
        base = next(line.split()[1] for line in out if line.startswith("curl ")).rsplit("/chat/completions", 1)[0]
        assert 'OpenAI(base_url="' + base in text
        models = httpx.get(f"{base}/models", headers={"Authorization": f"Bearer {key}"})
        assert models.status_code == 200
        server_pid = int(re.search(r"pid (\d+)", text).group(1))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert gone(server_pid)


# ------------------------------------------------------------------------------------------ state and logs

def test_stale_state_records_are_dropped(tmp_path):
    state = ServerState(tmp_path)
    key = ServerKey("llamacpp", "/m.gguf", 1, 2, "m", 2048, 0, "127.0.0.1")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    me = psutil.Process()
    state.add(ServerRecord(key, dead.pid, 1.0, 1, "k", me.pid, me.create_time(), "/log"))
    state.add(ServerRecord(key, me.pid, me.create_time(), 2, "k", me.pid, me.create_time(), "/log"))
    assert [r.port for r in state.live_records()] == [2]
    assert [r["port"] for r in json.loads(state.path.read_text())] == [2]
    state.path.write_text("{ not json")
    assert state.live_records() == []


def test_logs_rotate_and_stay_bounded(tmp_path):
    log = tmp_path / "llamacpp-x.log"
    for n in range(8):
        rotate(log)
        log.write_text(f"run {n}\n")
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == ["llamacpp-x.1.log", "llamacpp-x.2.log", "llamacpp-x.3.log", "llamacpp-x.4.log", "llamacpp-x.log"]
    assert tail(log) == ["run 7"] and tail(tmp_path / "llamacpp-x.4.log") == ["run 3"]
    # a writer that appends like a server does (O_APPEND) is trimmed from outside and goes on writing
    writer = subprocess.Popen([sys.executable, "-u", "-c", "import sys, time\nfor i in range(400):\n"
                               "    print('x' * 99); time.sleep(0.002)"], stdout=open(log, "ab"))
    while writer.poll() is None:
        trim(log, max_bytes=10_000)
        time.sleep(0.05)
    total = sum(p.stat().st_size for p in tmp_path.glob("llamacpp-x*.log"))
    assert log.stat().st_size < 40_000 and (tmp_path / "llamacpp-x.1.log").read_text().startswith("x")
    assert total > 0


@pytest.mark.tmux
def test_serve_in_a_terminal_shows_a_spinner_with_elapsed_time(test_model_path, tmp_path):
    import shutil

    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed")
    command = f"{sys.executable} -m oi_local.face.cli serve {test_model_path} --fresh_server"
    term = Tmux(command, env={"OI_LOCAL_HOME": str(tmp_path / "home"), "PATH": os.environ.get("PATH", "")},
                name="h3spin", width=150, height=40)
    screens = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            screen = term.screen(history=0)
            screens.append(screen)
            if "Server ready" in screen:
                break
            time.sleep(0.05)
        loading = [s for s in screens if re.search(r"Loading .* \d+s", s)]
        assert loading, screens[-1]
        assert "Server ready" in screens[-1] and "Loading" not in screens[-1]
        term.send("C-c")
        server_pid = int(re.search(r"pid (\d+)", screens[-1]).group(1))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not gone(server_pid):
            time.sleep(0.1)
        assert gone(server_pid)
    finally:
        term.close()


def test_two_servers_of_one_model_keep_their_own_logs(server: ManagedServer, test_model_path, home):
    with llamacpp.start(test_model_path, FIT, paths=home, model_id=server.endpoint.model_id, reuse=False,
                        progress=False) as second:
        assert second.log_path != server.log_path
        assert f"--port {second.port}" in second.log_path.read_text()
        assert f"--port {second.port}" not in server.log_path.read_text()
        assert f"--port {server.port}" in server.log_path.read_text()
