"""Issue 12, what the store lets be used and run: full verification on first use and whenever a file changed,
copies that never share an inode with their origin, and program files (llamafiles) that run only when their
sha256 is known from the catalog or pinned by the user. Real files, the real CLI, the hub stand-in."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from hub_standin import HubStandin, sha256_of

from oi_local.errors import OiLocalError
from oi_local.models import catalog
from oi_local.models.catalog import Architecture, CatalogEntry, Source
from oi_local.models.store import ModelStore
from oi_local.providers.base import ProviderContext

BIN = Path(sys.executable).parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO = "standin/trust"


def forge_fingerprint(models: Path, model_id: str, path: Path) -> None:
    """Make the index believe the file is the one it hashed: what a filesystem with coarse timestamps, or a
    careful attacker who also rewrote the index, would leave. Only a full hash can tell."""
    index_path = models / "index.json"
    data = json.loads(index_path.read_text())
    st = path.stat()
    for record in data["models"]:
        if record["id"] == model_id:
            record.update(size=st.st_size, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, inode=st.st_ino,
                          device=st.st_dev)
    index_path.write_text(json.dumps(data))


def edit_in_place_keeping_size_and_mtime(path: Path, offset: int = 4096) -> None:
    st = path.stat()
    # a file with another name (a hard link to the installed test model) must never be edited by a test
    assert st.st_nlink == 1, f"{path} has {st.st_nlink} names; editing it would change the others"
    with open(path, "r+b") as f:
        f.seek(offset)
        old = f.read(4)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in old))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


@pytest.fixture
def smol():
    entries = catalog.load()
    return entries, catalog.find(entries, "smollm2-135m")


# ---- verification ------------------------------------------------------------------------------------------


def test_an_in_place_edit_with_size_and_mtime_restored_is_caught_before_use(tmp_path, smol):
    from oi_local.machine.paths import app_paths
    from oi_local.providers import builtin

    entries, entry = smol
    paths = app_paths({"OI_LOCAL_HOME": str(tmp_path / "home")}).ensure()
    store = ModelStore(paths.models, entries)
    stored = store.import_file(store.ensure(entry, progress=False).path, model_id="mine", copy=False,
                               progress=False)
    ctx = ProviderContext(paths=paths, catalog=tuple(entries), progress=False)
    assert builtin.resolve("mine", ctx, "gguf").verified
    edit_in_place_keeping_size_and_mtime(stored.path)
    with pytest.raises(OiLocalError, match="does not match its sha256"):
        builtin.resolve("mine", ctx, "gguf", download=False)
    # the catalog model the store downloaded itself is fetched again instead of used
    again = builtin.resolve("smollm2-135m", ctx, "gguf")
    assert again.verified and sha256_of(again.path) == entry.sha256


def test_first_use_after_an_import_hashes_in_full_and_later_uses_trust_the_fingerprint(tmp_path, smol,
                                                                                      test_model_path):
    entries, entry = smol
    models = tmp_path / "models"
    store = ModelStore(models, entries)
    model = store.import_file(test_model_path, model_id="copy", copy=True, progress=False)
    edit_in_place_keeping_size_and_mtime(model.path)
    forge_fingerprint(models, "copy", model.path)
    assert store.checked("copy", progress=False).verified is False  # the first use hashes it anyway

    store.delete("copy")
    model = store.import_file(test_model_path, model_id="copy", copy=True, progress=False)
    assert store.checked("copy", progress=False).verified is True
    edit_in_place_keeping_size_and_mtime(model.path)
    forge_fingerprint(models, "copy", model.path)
    assert store.checked("copy", progress=False).verified is True  # a forged fingerprint is believed ...
    assert store.checked("copy", progress=False, verify=True).verified is False  # ... until --verify


def test_a_changed_ctime_or_inode_means_hash_again(tmp_path, smol, test_model_path):
    entries, _ = smol
    store = ModelStore(tmp_path / "models", entries)
    model = store.import_file(test_model_path, model_id="copy", copy=True, progress=False)
    store.checked("copy", progress=False)
    edit_in_place_keeping_size_and_mtime(model.path)  # ctime moved on: cannot be set back
    assert store.get("copy").trusted is False  # not trusted until it is checked again
    assert store.checked("copy", progress=False).verified is False
    # replaced by another file of the same size and mtime: a new inode
    store.delete("copy")
    model = store.import_file(test_model_path, model_id="copy", copy=True, progress=False)
    store.checked("copy", progress=False)
    st = model.path.stat()
    other = model.path.with_name("other")
    other.write_bytes(bytes(st.st_size))
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, model.path)
    assert store.checked("copy", progress=False).verified is False


def test_serve_verify_hashes_in_full_and_fetches_a_bad_file_again(tmp_path):
    home = tmp_path / "home"
    env = dict(os.environ, OI_LOCAL_HOME=str(home))
    done = subprocess.run([str(BIN / "oi-local"), "models", "download", "smollm2-135m", "--json"], env=env,
                          capture_output=True, text=True, timeout=120)
    path = Path(json.loads(done.stdout)["model"]["path"])
    store = ModelStore(home / "models", catalog.load())
    store.checked("smollm2-135m", progress=False)
    edit_in_place_keeping_size_and_mtime(path)
    forge_fingerprint(home / "models", "smollm2-135m", path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([str(BIN / "oi-local"), "serve", "smollm2-135m", "--verify", "--port", str(port),
                                "-c", "512"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        out = ""
        while time.monotonic() < deadline and "Server ready" not in out and process.poll() is None:
            out += process.stdout.readline()
        assert "Server ready" in out, (out, process.poll())
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert "does not match its sha256; deleting it and downloading again" in err
    assert sha256_of(path) == catalog.find(catalog.load(), "smollm2-135m").sha256


# ---- copies, never shared inodes ---------------------------------------------------------------------------


def test_the_installed_test_model_is_copied_not_hard_linked(tmp_path, smol, test_model_path):
    entries, entry = smol
    model = ModelStore(tmp_path / "models", entries).ensure(entry, progress=False)
    assert model.path.stat().st_ino != test_model_path.stat().st_ino  # checked before anything is written
    record = json.loads((tmp_path / "models" / "index.json").read_text())["models"][0]
    assert record["stored_as"] in ("reflink", "copy") and model.path.stat().st_nlink == 1
    with open(model.path, "r+b") as f:
        f.seek(4096)
        f.write(b"\xff")
    assert sha256_of(test_model_path) == entry.sha256  # the package's file is untouched


def test_import_copy_clones_or_copies_and_link_only_a_read_only_file(tmp_path, smol, test_model_path):
    entries, _ = smol
    models = tmp_path / "models"
    store = ModelStore(models, entries)
    mine = tmp_path / "mine" / "Mine.gguf"
    mine.parent.mkdir()
    mine.write_bytes(test_model_path.read_bytes())
    copied = store.import_file(mine, model_id="copied", copy=True, progress=False)
    assert copied.path.stat().st_ino != mine.stat().st_ino
    store.delete("copied")
    with pytest.raises(OiLocalError, match="chmod a-w"):
        store.import_file(mine, model_id="linked", link=True, progress=False)
    mine.chmod(0o444)
    linked = store.import_file(mine, model_id="linked", link=True, progress=False)
    assert linked.path.parent == models.absolute() and linked.path.stat().st_ino == mine.stat().st_ino
    assert json.loads((models / "index.json").read_text())["models"][0]["stored_as"] == "link"
    store.delete("linked")  # removes the store's name only
    assert not linked.path.exists() and mine.exists()


def test_clone_file_says_which_way_it_copied(tmp_path, test_model_path):
    from oi_local.files import clone_file

    how = clone_file(test_model_path, tmp_path / "clone.gguf")
    assert how in ("reflink", "copy")
    assert (tmp_path / "clone.gguf").stat().st_ino != test_model_path.stat().st_ino
    assert (tmp_path / "clone.gguf").stat().st_mode & 0o777 == 0o600
    assert sha256_of(tmp_path / "clone.gguf") == sha256_of(test_model_path)


# ---- program files run only when trusted ------------------------------------------------------------------


def make_llamafile(folder: Path, test_model_path: Path, marker: Path) -> Path:
    """A llamafile as the real ones are built (a launcher that is also a shell script, with the GGUF stored
    in a zip at its end): its launcher touches `marker` and then runs the fake llamafile server."""
    launcher = (FIXTURES / "fake_llamafile.sh").read_text().replace(
        'echo "fake llamafile: serving', f'touch {marker}\necho "fake llamafile: serving', 1)
    path = folder / "Tiny.llamafile"
    path.write_text(launcher + "\nexit 0\n")
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_STORED) as archive:
        archive.write(test_model_path, "Tiny.gguf")
    return path


def user_catalog(home: Path, blob: Path, source: str, sha256: str = "unknown") -> None:
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "model_catalog.yaml").write_text(f"""\
models:
  - id: tiny-llamafile
    name: "Tiny llamafile"
    format: llamafile
    file: {blob.name}
    size_bytes: {blob.stat().st_size}
    sha256: {sha256}
    sources:
      - {source}
    architecture: {{block_count: 30, kv_heads: 3, head_count: 9, embedding_length: 576, context_length: 8192}}
    capabilities: [chat]
    license: apache-2.0
    chat_template: chatml
""")


def cli(home: Path, *args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "oi-local"), *args], env=dict(os.environ, OI_LOCAL_HOME=str(home), **env),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_a_llamafile_trusted_on_the_hubs_etag_alone_is_not_run_until_the_user_pins_it(tmp_path, test_model_path):
    home = tmp_path / "home"
    marker = tmp_path / "executed"
    blob = make_llamafile(tmp_path, test_model_path, marker)
    user_catalog(home, blob, f"kind: hf\n        repo: {REPO}")
    fake = {"FAKE_LLAMAFILE_PYTHON": sys.executable, "FAKE_LLAMAFILE_MODEL": str(test_model_path)}
    with HubStandin() as hub:
        hub.add_file(REPO, blob.name, blob)
        env = {"HF_ENDPOINT": hub.endpoint, **fake}
        model = json.loads(cli(home, "models", "download", "tiny-llamafile", "--json", env=env).stdout)["model"]
    assert model["verified"] is True and model["trusted"] is False and model["sha256_source"] == "hub"

    refused = cli(home, "serve", "tiny-llamafile", "-c", "512", env=fake)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "not executed" in refused.stderr and "oi-local models verify ID --trust" in refused.stderr
    assert not marker.exists()
    stored = Path(model["path"])
    refused = cli(home, "serve", str(stored), "-c", "512", env=fake)  # by its path: still the store's verdict
    assert refused.returncode == 1 and "not executed" in refused.stderr and not marker.exists()

    pinned = cli(home, "models", "verify", "tiny-llamafile", "--trust", env=fake)
    assert pinned.returncode == 0 and sha256_of(blob) in pinned.stdout and "pinned by you" in pinned.stdout
    process = subprocess.Popen([str(BIN / "oi-local"), "serve", "tiny-llamafile", "-c", "512"],
                               env=dict(os.environ, OI_LOCAL_HOME=str(home), **fake), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out = ""
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and "Server ready" not in out and process.poll() is None:
            out += process.stdout.readline()
        assert "Server ready" in out, (out, process.poll())
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
    assert marker.exists()


def test_the_builtin_provider_hands_the_trust_verdict_to_the_runner(tmp_path, test_model_path):
    from oi_local.machine.paths import app_paths
    from oi_local.providers import builtin
    from oi_local.serving.runners import llamafile

    home = tmp_path / "home"
    marker = tmp_path / "executed"
    blob = make_llamafile(tmp_path, test_model_path, marker)
    paths = app_paths({"OI_LOCAL_HOME": str(home)}).ensure()
    entry = CatalogEntry(id="tiny-llamafile", name="Tiny", format="llamafile", file=blob.name,
                         size_bytes=blob.stat().st_size, sha256=None, sources=(Source(kind="hf", repo=REPO),),
                         architecture=Architecture(30, 3, 64, 8192), capabilities=frozenset({"chat"}),
                         license="mit", chat_template="chatml")
    with HubStandin() as hub:
        hub.add_file(REPO, blob.name, blob)
        os.environ["HF_ENDPOINT"] = hub.endpoint
        ctx = ProviderContext(paths=paths, catalog=(entry,), progress=False)
        resolved = builtin.resolve("tiny-llamafile", ctx, "llamafile")
    assert resolved.verified and not resolved.trusted
    from oi_local.machine.hardware import probe
    from oi_local.models.fit import fit_file

    fit = fit_file(resolved.path, probe(paths.models), entry, n_ctx=512)
    with pytest.raises(OiLocalError, match="not executed"):
        llamafile.start(resolved.path, fit, paths=paths, model_id="x", trusted=resolved.trusted, progress=False)
    assert not marker.exists()
    ModelStore(paths.models, [entry]).trust("tiny-llamafile", progress=False)
    assert builtin.resolve("tiny-llamafile", ctx, "llamafile").trusted
    # a user catalog that gives the sha256 is trusted as it is
    pinned = dataclasses.replace(entry, sha256=sha256_of(blob))
    store = ModelStore(tmp_path / "other-models", [pinned], offline=False)  # resolve() made the process offline
    with HubStandin() as hub:
        hub.add_file(REPO, blob.name, blob)
        os.environ["HF_ENDPOINT"] = hub.endpoint
        assert store.ensure(pinned, progress=False).trusted


def test_a_plain_http_source_without_a_catalog_sha256_is_refused_before_any_byte(tmp_path, test_model_path):
    home = tmp_path / "home"
    blob = make_llamafile(tmp_path, test_model_path, tmp_path / "executed")
    with HubStandin() as hub:
        hub.add_file(REPO, blob.name, blob)
        user_catalog(home, blob, f"kind: url\n        url: {hub.url(REPO, blob.name)}")
        done = cli(home, "models", "download", "tiny-llamafile", env={})
        assert hub.count() == 0
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert "plain http" in done.stderr and "add the file's sha256 to the catalog entry" in done.stderr
        user_catalog(home, blob, f"kind: url\n        url: {hub.url(REPO, blob.name)}", sha256=sha256_of(blob))
        model = json.loads(cli(home, "models", "download", "tiny-llamafile", "--json", env={}).stdout)["model"]
    assert model["verified"] is True and model["trusted"] is True
