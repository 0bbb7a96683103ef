"""Issue 12, processes left behind: a server never outlives the programs that use it (kill -9 included), one
server per model and settings however many launchers start at once, and one log per server."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from oi_local.machine.paths import app_paths
from oi_local.serving.server import models_status
from oi_local.serving.state import ServerState

pytestmark = pytest.mark.server

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
LAUNCHER = TESTS / "server_launcher.py"


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pids, timeout: float = 8.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if p and not gone(p)]
        if not left:
            return []
        time.sleep(0.05)
    return [p for p in pids if p and not gone(p)]


def llama_servers(model_id: str) -> list[int]:
    """Live llama.cpp server processes serving `model_id` (its alias is unique to one test)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            cmd = proc.info["cmdline"] or []
            if proc.info["status"] != psutil.STATUS_ZOMBIE and "llama_cpp.server" in cmd and model_id in cmd:
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


class Launcher:
    """One tests/server_launcher.py process."""

    def __init__(self, model: Path, home: Path, model_id: str, *flags: str) -> None:
        self.proc = subprocess.Popen([sys.executable, str(LAUNCHER), str(model), str(home), model_id, *flags],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, cwd=REPO)
        self.info: dict = {}

    def started(self) -> dict:
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read()
        self.info = json.loads(line)
        return self.info

    def send(self, command: str) -> None:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def answer(self) -> dict:
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read()
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def launchers():
    started: list[Launcher] = []
    yield started
    for launcher in started:
        launcher.close()


def record_for(home: Path, model_id: str):
    state = ServerState(app_paths({"OI_LOCAL_HOME": str(home)}).state)
    return next((r for r in state._read() if r.key.model_id == model_id), None)


# ------------------------------------------------------------------------------------------ kill -9

@pytest.mark.parametrize("when", ["while loading", "after ready"])
def test_kill_9_of_the_launcher_leaves_no_server(when, test_model_path, tmp_path, launchers):
    model_id = f"h12-kill-{secrets.token_hex(3)}"
    launcher = Launcher(test_model_path, tmp_path, model_id)
    launchers.append(launcher)
    if when == "while loading":
        deadline = time.monotonic() + 60
        record = None
        while time.monotonic() < deadline:  # the record is written before the server starts
            record = record_for(tmp_path, model_id)
            if record is not None and record.pid:
                break
            time.sleep(0.01)
        assert record is not None and record.pid and record.watchdog_pid
        assert [u.pid for u in record.users] == [launcher.proc.pid]
        server, watchdog = record.pid, record.watchdog_pid
        assert models_status("127.0.0.1", record.port, record.api_key) != 200  # still loading the model
    else:
        info = launcher.started()
        server, watchdog = info["pid"], info["watchdog_pid"]
        assert models_status("127.0.0.1", info["port"], info["api_key"]) == 200
    assert not gone(server) and not gone(watchdog)
    launcher.proc.kill()  # SIGKILL: no handler, no atexit
    launcher.proc.wait(10)
    assert wait_gone([server, watchdog]) == [], "the server outlived its launcher"
    assert llama_servers(model_id) == []  # and no later run was needed for that


def test_kill_9_of_the_watchdog_takes_its_server_along(test_model_path, tmp_path, launchers):
    """Linux: the server gets the parent-death signal from its watchdog."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the parent-death signal is Linux's; elsewhere the next run's orphan cleanup covers this")
    model_id = f"h12-wd-{secrets.token_hex(3)}"
    launcher = Launcher(test_model_path, tmp_path, model_id)
    launchers.append(launcher)
    info = launcher.started()
    os.kill(info["watchdog_pid"], signal.SIGKILL)
    assert wait_gone([info["pid"]]) == []


CHILD_LAUNCHER = textwrap.dedent("""
    import sys, threading, time
    from pathlib import Path
    from oi_local.serving.process import ManagedChild

    log, how = Path(sys.argv[1]), sys.argv[2]
    children = []
    def start():
        children.append(ManagedChild(["sleep", "300"], log_path=log, watchdog=(how == "watchdog")))
    if how == "thread":  # started from a thread that then ends: the child must not die with that thread
        worker = threading.Thread(target=start)
        worker.start()
        worker.join()
        time.sleep(1.0)
    else:
        start()
    print(children[0].pid, int(children[0].healthy()), flush=True)
    time.sleep(300)
""")


@pytest.mark.parametrize("how", ["main", "thread", "watchdog"])
def test_a_managed_child_dies_with_its_launcher_on_kill_9(how, tmp_path):
    if how != "watchdog" and not sys.platform.startswith("linux"):
        pytest.skip("the parent-death signal is Linux's; the watchdog variant covers other systems")
    proc = subprocess.Popen([sys.executable, "-c", CHILD_LAUNCHER, str(tmp_path / "child.log"), how],
                            stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        pid, healthy = map(int, proc.stdout.readline().split())
        assert healthy and not gone(pid)  # alive, also after the thread that started it has ended
        proc.kill()
        proc.wait(10)
        assert wait_gone([pid]) == []
    finally:
        if proc.poll() is None:
            proc.kill()


# ------------------------------------------------------------------------------------------ sharing

def test_three_launchers_at_once_share_one_server_and_one_log(test_model_path, tmp_path, launchers):
    model_id = f"h12-three-{secrets.token_hex(3)}"
    trio = [Launcher(test_model_path, tmp_path, model_id) for _ in range(3)]
    launchers.extend(trio)
    infos = [launcher.started() for launcher in trio]
    assert len({i["pid"] for i in infos}) == 1 and len({i["api_key"] for i in infos}) == 1
    assert sorted(i["reused"] for i in infos) == [False, True, True]
    assert llama_servers(model_id) == [infos[0]["pid"]]
    log_path = Path(infos[0]["log_path"])
    assert {i["log_path"] for i in infos} == {str(log_path)}
    logs = sorted(p.name for p in log_path.parent.iterdir() if model_id in p.name)
    assert logs == [log_path.name]  # one server, one log; nothing renamed
    assert f"--port {infos[0]['port']}" in log_path.read_text().splitlines()[0]
    record = record_for(tmp_path, model_id)
    assert sorted(u.pid for u in record.users) == sorted(t.proc.pid for t in trio)
    for launcher in trio:
        launcher.send("exit")
        assert launcher.answer() == {"stopped": True}
    assert wait_gone([infos[0]["pid"], infos[0]["watchdog_pid"]]) == []


def test_a_shared_server_outlives_its_starter_until_its_last_user_leaves(test_model_path, tmp_path, launchers):
    model_id = f"h12-share-{secrets.token_hex(3)}"
    first = Launcher(test_model_path, tmp_path, model_id)
    launchers.append(first)
    info = first.started()
    second, third = Launcher(test_model_path, tmp_path, model_id), Launcher(test_model_path, tmp_path, model_id)
    launchers.extend([second, third])
    assert second.started()["reused"] and third.started()["reused"]
    # the second streams a long reply; meanwhile the third asks too, and the starter leaves
    second.send("chat 48")
    time.sleep(0.3)
    third.send("chat 8")
    first.send("exit")
    assert first.answer() == {"stopped": True}
    first.proc.wait(20)
    long_reply, short_reply = second.answer(), third.answer()
    assert long_reply["finish_reason"] == "length" and long_reply["chunks"] >= 40  # not cut short by the others
    assert short_reply["text"].strip()
    assert not gone(info["pid"]) and models_status("127.0.0.1", info["port"], info["api_key"]) == 200
    third.proc.kill()  # a user killed with -9 is dropped; the server stays for the one left
    third.proc.wait(10)
    time.sleep(1.0)
    assert not gone(info["pid"])
    second.send("chat 4")
    assert second.answer()["text"].strip()
    second.send("exit")
    assert second.answer() == {"stopped": True}
    assert wait_gone([info["pid"], info["watchdog_pid"]]) == []


def test_a_new_server_never_renames_a_running_servers_log(test_model_path, tmp_path, launchers):
    model_id = f"h12-logs-{secrets.token_hex(3)}"
    first = Launcher(test_model_path, tmp_path, model_id)
    launchers.append(first)
    one = first.started()
    second = Launcher(test_model_path, tmp_path, model_id, "--fresh")
    launchers.append(second)
    two = second.started()
    assert one["pid"] != two["pid"] and one["log_path"] != two["log_path"]
    first_log = Path(one["log_path"])
    assert f"--port {one['port']}" in first_log.read_text().splitlines()[0]  # still the first server's own log
    before = first_log.stat().st_size
    first.send("chat 4")
    first.answer()
    assert first_log.stat().st_size > before  # and that server still writes into it
    assert f"--port {two['port']}" in Path(two["log_path"]).read_text().splitlines()[0]


def test_a_launcher_thread_that_ends_does_not_take_a_managed_child_along_in_the_main_process(tmp_path):
    """The same gotcha in this process: ManagedChild started from a short-lived thread keeps running."""
    from oi_local.serving.process import ManagedChild

    holder = []
    worker = threading.Thread(target=lambda: holder.append(ManagedChild(["sleep", "60"], log_path=tmp_path / "c.log")))
    worker.start()
    worker.join()
    child = holder[0]
    try:
        time.sleep(0.5)
        assert child.healthy()
    finally:
        child.stop()
    assert gone(child.pid)


def test_a_server_busy_with_another_users_reply_is_reused_not_duplicated(test_model_path, tmp_path):
    """llama-cpp-python answers /v1/models only between generations: a busy server is alive all the same."""
    from server_launcher import FIT, chat

    from oi_local.serving.runners import llamacpp

    home = app_paths({"OI_LOCAL_HOME": str(tmp_path)}).ensure()
    model_id = f"h12-busy-{secrets.token_hex(3)}"
    with llamacpp.start(test_model_path, FIT, paths=home, model_id=model_id, progress=False) as first:
        replies = []
        streaming = threading.Thread(target=lambda: replies.append(chat(first, 1000, to_the_limit=True)))
        streaming.start()
        try:
            deadline = time.monotonic() + 60
            while models_status("127.0.0.1", first.port, first.endpoint.api_key, timeout=1.0) is not None:
                assert streaming.is_alive() and time.monotonic() < deadline, "the server never looked busy"
                time.sleep(0.1)
            again = llamacpp.start(test_model_path, FIT, paths=home, model_id=model_id, progress=False)
            assert streaming.is_alive(), "the reply ended before the second start: the test proves nothing"
            assert again.reused and again.pid == first.pid and llama_servers(model_id) == [first.pid]
            assert first.problem() is None  # busy is not broken
            again.stop()
        finally:
            streaming.join(600)
        assert replies and replies[0]["chunks"] > 10 and replies[0]["finish_reason"] == "length"
