"""Issue 12, the store's faults: a hub that cannot be reached (closed port, no answer, unknown name, no network at
all, a failing hub), offline runs that must not even look a name up, a full disk, and folder permissions.
Real CLI processes, the real huggingface_hub client against the hub stand-in, real tmpfs and network namespaces."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hub_standin import HubStandin
from namespace_support import LOOPBACK_ONLY, can_unshare

from oi_local.errors import OiLocalError

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
AUDIT_DIR = Path(__file__).resolve().parent / "offline_audit"
REPO = "standin/faults"
HUB_MODEL = "tiny-hub"  # a user-catalog model whose only source is the hub: never on disk in these tests


def write_user_catalog(home: Path, size: int, *, model_id: str = HUB_MODEL, file: str = "Tiny-Q4.gguf",
                       fmt: str = "gguf", source: str = f"kind: hf\n        repo: {REPO}",
                       sha256: str = "unknown") -> None:
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "model_catalog.yaml").write_text(f"""\
models:
  - id: {model_id}
    name: "Tiny for faults"
    format: {fmt}
    file: {file}
    size_bytes: {size}
    sha256: {sha256}
    sources:
      - {source}
    architecture: {{block_count: 2, kv_heads: 1, head_count: 2, embedding_length: 16, context_length: 2048}}
    capabilities: [chat]
    license: mit
    chat_template: chatml
""")


def run_cli(home: Path, *args: str, env: dict | None = None, timeout: float = 120, program: str = "oi-local",
            wrap: list[str] | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, OI_LOCAL_HOME=str(home), **(env or {}))
    argv = [*(wrap or []), str(BIN / program), *args]
    return subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def assert_one_paragraph(done: subprocess.CompletedProcess, *words: str) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "httpx" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, done.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SilentServer:
    """Accepts connections and never answers: a hub that does not respond."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


# ---- a hub that cannot be reached ---------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint, words", [
    ("closed", "connection refused"),
    ("http://hub.invalid", "could not be looked up"),
])
def test_download_from_an_unreachable_hub_is_one_paragraph(tmp_path, endpoint, words):
    home = tmp_path / "home"
    write_user_catalog(home, 1000)
    if endpoint == "closed":
        endpoint = f"http://127.0.0.1:{closed_port()}"
    done = run_cli(home, "models", "download", HUB_MODEL, env={"HF_ENDPOINT": endpoint})
    assert_one_paragraph(done, HUB_MODEL, "cannot reach", endpoint, words, "oi-local models import")
    assert not list((home / "models").glob("*.gguf"))


def test_a_hub_that_never_answers_times_out_into_one_paragraph(tmp_path):
    home = tmp_path / "home"
    write_user_catalog(home, 1000)
    silent = SilentServer()
    try:
        started = time.monotonic()
        done = run_cli(home, "models", "download", HUB_MODEL,
                       env={"HF_ENDPOINT": f"http://127.0.0.1:{silent.port}", "OI_LOCAL_TIMEOUT_SCALE": "0.1"})
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert_one_paragraph(done, "cannot reach", "no answer in time")
    assert elapsed < 60  # the hub metadata timeout (10 s, scaled by 0.1) ended it, not the test's own timeout


@pytest.mark.parametrize("status, words", [
    (500, "HTTP 500"), (503, "try again later"), (429, "wait a few minutes"),
])
def test_a_failing_hub_is_one_paragraph_with_what_to_do(tmp_path, status, words):
    home = tmp_path / "home"
    blob = tmp_path / "Tiny-Q4.gguf"
    blob.write_bytes(os.urandom(4096))
    write_user_catalog(home, blob.stat().st_size)
    with HubStandin() as hub:
        hub.add_file(REPO, blob.name, blob)
        hub.fail_status = status
        done = run_cli(home, "models", "download", HUB_MODEL, env={"HF_ENDPOINT": hub.endpoint})
        assert hub.count("GET") == 0
    assert_one_paragraph(done, "the hub answered", words)


def test_interpreter_local_with_an_unreachable_hub_is_one_paragraph(tmp_path):
    home = tmp_path / "home"
    write_user_catalog(home, 1000)
    done = run_cli(home, "--local", "--provider", "llamacpp", "--model", HUB_MODEL, "-y", "hi", program="interpreter",
                   env={"HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"})
    assert_one_paragraph(done, "cannot reach", "connection refused")


def test_downloads_in_a_network_namespace_without_network_are_one_paragraph(tmp_path):
    reason = can_unshare()
    if reason:
        pytest.skip(reason)
    home = tmp_path / "home"
    write_user_catalog(home, 1000)
    wrap = LOOPBACK_ONLY
    env = {"HF_ENDPOINT": "https://huggingface.co"}  # the real default: needs DNS, which is not there
    done = run_cli(home, "models", "download", HUB_MODEL, env=env, wrap=wrap)
    assert_one_paragraph(done, "cannot reach https://huggingface.co", "could not be looked up")
    done = run_cli(home, "models", "download", HUB_MODEL, env={"HF_ENDPOINT": "http://192.0.2.1"}, wrap=wrap)
    assert_one_paragraph(done, "cannot reach", "network is unreachable")
    # a URL source (plain httpx, not the hub library) fails as clearly
    write_user_catalog(home, 1000, source="kind: url\n        url: https://models.example.org/Tiny-Q4.gguf")
    done = run_cli(home, "models", "download", HUB_MODEL, env=env, wrap=wrap)
    assert_one_paragraph(done, "https://models.example.org/Tiny-Q4.gguf", "failed")


@pytest.mark.tmux
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_menus_download_with_an_unreachable_hub_shows_the_error_and_goes_on(tmp_path):
    from tmux_driver import Tmux

    home = tmp_path / "home"
    write_user_catalog(home, 1000)
    term = Tmux(f"{BIN / 'interpreter'} --local_models", name="oi-store-faults", env={
        "OI_LOCAL_HOME": str(home), "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}", "TERM": "xterm-256color"})
    try:
        menu = "» List the models on disk"
        term.wait_for(menu)
        term.send("Down", "Enter")  # Download a model from the catalog
        term.wait_for("Download which model?")
        for _ in range(60):  # walk to the user catalog's model
            if "» " in term.screen() and "Tiny for faults" in term.screen().split("» ", 1)[1].splitlines()[0]:
                break
            term.send("Down")
            time.sleep(0.05)
        term.send("Enter")
        screen = term.wait_for(menu, after="Error:")
        assert "cannot reach" in screen and "Traceback" not in screen
        term.send("Escape")
        term.wait_for("EXITED-0")
    finally:
        term.close()


# ---- offline: no connection attempt of any kind --------------------------------------------------------------


def audited_env(home: Path, audit_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_ENDPOINT", "HF_HUB_OFFLINE")}
    env.update(OI_LOCAL_HOME=str(home), PYTHONPATH=str(AUDIT_DIR), OI_AUDIT_FILE=str(audit_file))
    return env  # HF_ENDPOINT unset: the real hub's name, which a lookup would have to resolve


def network_attempts(audit_file: Path) -> list[dict]:
    if not audit_file.exists():
        return []
    records = [json.loads(line) for line in audit_file.read_text().splitlines() if line.strip()]
    assert any(r["event"] == "start" for r in records)  # the audit hook ran
    return [r for r in records if r["event"] != "start"]


def _offline_run(home: Path, tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    audit_file = tmp_path / "audit.jsonl"
    done = subprocess.run([str(BIN / "interpreter"), *args], env=audited_env(home, audit_file), capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    return done, network_attempts(audit_file)


def test_offline_flag_with_a_model_not_on_disk_makes_no_lookup_and_says_what_to_do(tmp_path):
    home = tmp_path / "home"
    write_user_catalog(home, 1000)
    done, attempts = _offline_run(home, tmp_path, "--local", "--offline", "--provider", "llamacpp", "--model",
                                  HUB_MODEL, "-y", "hi")
    assert attempts == []  # not even getaddrinfo('huggingface.co')
    assert_one_paragraph(done, HUB_MODEL, "offline", "oi-local models download", "oi-local models import")


def test_offline_true_in_a_profile_makes_no_lookup(tmp_path):
    home = tmp_path / "home"
    write_user_catalog(home, 1000)
    profile = tmp_path / "air-gapped.yaml"
    profile.write_text("offline: true\n")
    done, attempts = _offline_run(home, tmp_path, "--local", "-p", str(profile), "--provider", "llamacpp",
                                  "--model", HUB_MODEL, "-y", "hi")
    assert attempts == []
    assert_one_paragraph(done, "offline")


def test_the_python_apis_offline_reaches_the_store_before_the_hub_is_imported(tmp_path):
    home = tmp_path / "home"
    write_user_catalog(home, 1000)
    audit_file = tmp_path / "audit.jsonl"
    code = (
        "import sys\n"
        "from oi_local import OpenInterpreter, local_setup\n"
        "from oi_local.errors import OiLocalError\n"
        "interpreter = OpenInterpreter(offline=True)\n"
        "try:\n"
        f"    local_setup(interpreter, provider='llamacpp', model='{HUB_MODEL}', progress=False)\n"
        "except OiLocalError as error:\n"
        "    print('REFUSED', error)\n"
        "print('HUB IMPORTED' if 'huggingface_hub' in sys.modules else 'HUB NOT IMPORTED')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=audited_env(home, audit_file), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "REFUSED" in done.stdout and "offline" in done.stdout and "HUB NOT IMPORTED" in done.stdout, done.stdout
    assert network_attempts(audit_file) == []


def test_store_offline_argument_fetches_nothing(tmp_path):
    from oi_local.models import catalog
    from oi_local.models.store import ModelStore

    home = tmp_path / "home"
    write_user_catalog(home, 1000)
    entries = catalog.load(home / "config" / "model_catalog.yaml")
    store = ModelStore(home / "models", entries, offline=True)
    with pytest.raises(OiLocalError, match="offline"):
        store.ensure(catalog.find(entries, HUB_MODEL), progress=False)


# ---- a full disk -----------------------------------------------------------------------------------------------


@pytest.fixture
def small_disk():
    """A 2 MiB tmpfs mounted for this test (root only), unmounted after it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; run the suite as root to test a full disk")
    if shutil.which("mount") is None:
        pytest.skip("mount is not installed")
    # not under pytest's private temporary folder: the mount point must be reachable as it is
    point = Path(tempfile.mkdtemp(prefix="oi_local-tmpfs-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        point.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)
        point.rmdir()


def fill(folder: Path) -> None:
    """Write until the filesystem is full (down to the last byte)."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        chunk = 65536
        while chunk:
            try:
                os.write(fd, b"\0" * chunk)
            except OSError:
                chunk //= 2
    finally:
        os.close(fd)


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.tmp")]


def test_a_full_disk_while_writing_the_index_is_one_paragraph_and_leaves_no_temp_file(small_disk, tmp_path,
                                                                                       test_model_path):
    home = small_disk / "home"
    from oi_local.machine.paths import app_paths

    paths = app_paths({"OI_LOCAL_HOME": str(home)}).ensure()
    fill(small_disk)
    # registering the test model where it is writes nothing but the index
    done = run_cli(home, "models", "import", str(test_model_path))
    assert_one_paragraph(done, "No space left on device", "index.json", "Free some disk space")
    assert temp_files(small_disk) == [] and not (paths.models / "index.json").exists()
    (small_disk / "filler").unlink()
    assert json.loads(run_cli(home, "models", "import", str(test_model_path), "--json").stdout)["model"]["id"]


def test_a_full_disk_while_copying_a_model_leaves_nothing_behind(small_disk, test_model_path):
    from oi_local.files import FileWriteError, clone_file

    with pytest.raises(FileWriteError) as info:
        clone_file(test_model_path, small_disk / "copy.gguf")  # 94 MB into 2 MiB
    assert "No space left on device" in str(info.value) and "\n" not in str(info.value)
    assert list(small_disk.iterdir()) == []


def test_temp_files_left_by_older_versions_are_removed(tmp_path, test_model_path):
    from oi_local.models.store import ModelStore

    models = tmp_path / "models"
    models.mkdir()
    old = models / ".index.json.12345.tmp"  # what a killed older version left
    old.write_text("{")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    fresh = models / ".index.json.abc123.tmp"  # a writer of another version may be busy with this one
    fresh.write_text("{")
    ModelStore(models, []).import_file(test_model_path, progress=False)
    assert not old.exists() and fresh.exists()


def test_a_killed_copy_leaves_no_gigabytes_behind_for_good(tmp_path, smol_entry):
    from oi_local.models.store import ModelStore

    models = tmp_path / "models"
    (models / ".downloads").mkdir(parents=True)
    leftovers = [models / f".{smol_entry.file}.x1y2.tmp", models / ".downloads" / f".{smol_entry.file}.part.a1b2.tmp"]
    for leftover in leftovers:
        leftover.write_bytes(b"\0" * 4096)
        os.utime(leftover, (time.time() - 3600, time.time() - 3600))
    ModelStore(models, [smol_entry]).ensure(smol_entry, progress=False)
    assert [p for p in leftovers if p.exists()] == []


@pytest.fixture
def smol_entry():
    from oi_local.models import catalog

    return catalog.find(catalog.load(), "smollm2-135m")


# ---- permissions ------------------------------------------------------------------------------------------------


def test_app_folders_are_private_and_older_open_ones_are_tightened(tmp_path):
    from oi_local.machine.paths import app_paths

    home = tmp_path / "home"
    (home / "conversations").mkdir(parents=True)
    (home / "conversations").chmod(0o755)  # as an older version made it
    paths = app_paths({"OI_LOCAL_HOME": str(home)}).ensure()
    for folder in paths.folders:
        assert folder.stat().st_mode & 0o777 == 0o700, folder


def test_platform_folders_and_their_oi_local_parents_are_private(tmp_path, monkeypatch):
    from oi_local.machine.paths import APP_NAME, app_paths

    monkeypatch.delenv("OI_LOCAL_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    (tmp_path / "data" / APP_NAME).mkdir(parents=True, mode=0o755)
    (tmp_path / "data" / APP_NAME).chmod(0o755)
    paths = app_paths().ensure()
    for folder in paths.folders:
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    assert (tmp_path / "data" / APP_NAME).stat().st_mode & 0o777 == 0o700


def _folder_another_user_can_reach(as_user: list[str]) -> Path:
    """A fresh 0755 folder the other user can list (pytest's own folder is private; so may be /tmp's parent)."""
    for parent in (tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"):
        try:
            root = Path(tempfile.mkdtemp(prefix="oi_local-perm-", dir=parent))
        except OSError:
            continue
        root.chmod(0o755)
        if subprocess.run([*as_user, "ls", str(root)], capture_output=True).returncode == 0:
            return root
        shutil.rmtree(root, ignore_errors=True)
    pytest.skip("no folder here that a second user can reach")


def test_another_user_cannot_list_the_conversations(tmp_path):
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs root and runuser to act as a second user")
    from oi_local.agent import conversations
    from oi_local.machine.paths import app_paths

    as_nobody = ["runuser", "-u", "nobody", "--"]
    root = _folder_another_user_can_reach(as_nobody)
    try:
        paths = app_paths({"OI_LOCAL_HOME": str(root / "home")})
        conversations.save([{"role": "user", "type": "message", "content": "secret plans"}],
                           paths.conversations / "secret_plans.json")
        paths.ensure()
        assert subprocess.run([*as_nobody, "ls", str(root)], capture_output=True).returncode == 0  # control
        listing = subprocess.run([*as_nobody, "ls", str(paths.conversations)], capture_output=True, text=True)
        assert listing.returncode != 0 and "secret_plans" not in listing.stdout
        assert "Permission denied" in listing.stderr
        assert (paths.conversations / "secret_plans.json").stat().st_mode & 0o777 == 0o600
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_folder_made_for_a_private_file_is_private(tmp_path):
    from oi_local.files import write_atomic

    write_atomic(tmp_path / "new" / "deeper" / "state.json", "{}")
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "new" / "deeper").stat().st_mode & 0o777 == 0o700
    write_atomic(tmp_path / "export" / "chat.md", "# hi", mode=0o644)  # a file meant to be shared
    assert (tmp_path / "export").stat().st_mode & 0o077


def test_store_files_are_private(tmp_path, test_model_path):
    from oi_local.models import catalog
    from oi_local.models.store import ModelStore

    entries = catalog.load()
    store = ModelStore(tmp_path / "models", entries)
    model = store.ensure(catalog.find(entries, "smollm2-135m"), progress=False)
    assert (tmp_path / "models").stat().st_mode & 0o777 == 0o700
    assert model.path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "models" / "index.json").stat().st_mode & 0o777 == 0o600
    for lock in (tmp_path / "models" / ".downloads").iterdir():
        assert lock.stat().st_mode & 0o077 == 0, lock
