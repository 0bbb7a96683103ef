"""The bundle's parts on their own, with real files: the target check, the manifest and verify, Ollama's layout,
the catalog merge, the offline default and the create options. Fast: no bundle is built here (test_bundle.py
builds and installs a real one)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bundle_support import make_ollama_store

from oi_local.bundle import manifest as mf
from oi_local.bundle import ollama
from oi_local.bundle import target as tg
from oi_local.bundle.archive import BundleWriter, available_compressions
from oi_local.bundle.llama_wheel import backend_of, shared_library_needs
from oi_local.bundle.manifest import BundleError
from oi_local.bundle.pip_target import expand_platform
from oi_local.bundle.verify import verify, verify_dir
from oi_local.files import sha256_file
from oi_local.machine.paths import app_paths

# ---- the target ---------------------------------------------------------------------------------------------------


def bundle_for_here(**changes) -> tg.Target:
    here = tg.this_machine()
    return dataclasses.replace(here, platform_tags=("manylinux_2_17_x86_64",), **changes)


def test_this_machine_fits_a_bundle_made_for_it():
    here = tg.this_machine()
    assert here.implementation == "CPython" and here.python == f"{sys.version_info[0]}.{sys.version_info[1]}"
    if here.system == "Linux":
        assert here.libc == "glibc" and here.libc_version and here.libstdcxx  # read from the real libstdc++
    assert tg.problems(bundle_for_here(), here) == []
    tg.check(bundle_for_here(), here)


@pytest.mark.parametrize(("change", "words"), [
    ({"python": "3.99"}, "the wheels are for Python 3.99"),
    ({"machine": "riscv64"}, "the wheels are for riscv64 processors"),
    ({"implementation": "PyPy"}, "the wheels are for PyPy"),
    ({"libc_version": "9.99"}, "or newer, this system has"),
    ({"libstdcxx": "3.4.99"}, "llama.cpp needs libstdc++ with GLIBCXX_3.4.99"),
    ({"system": "Darwin"}, "the wheels are for Darwin"),
])
def test_a_mismatch_is_one_paragraph_naming_both_targets(change, words):
    here = tg.this_machine()
    if here.system != "Linux" and ("libc_version" in change or "libstdcxx" in change):
        pytest.skip("glibc and libstdc++ are checked on Linux")
    bundle = bundle_for_here(**change)
    with pytest.raises(BundleError) as caught:
        tg.check(bundle, here)
    message = str(caught.value)
    assert words in message
    assert message.startswith(f"This bundle was made for {bundle.describe(needs=True)}; this machine has {here.describe(needs=False)}")
    assert "Nothing was installed" in message and "\n" not in message


def test_a_machine_without_libstdcxx_is_told_what_to_install():
    here = dataclasses.replace(tg.this_machine(), system="Linux", libc="glibc", libstdcxx=None)
    bundle = dataclasses.replace(here, libstdcxx="3.4.30")
    assert tg.problems(bundle, here) == ["llama.cpp needs libstdc++ (libstdc++6), which this system does not have"]


def test_the_shared_libraries_of_the_built_llama_wheel_name_their_glibc():
    from importlib import metadata
    from urllib.parse import unquote, urlparse

    url = json.loads(metadata.distribution("llama_cpp_python").read_text("direct_url.json") or "{}").get("url", "")
    wheel = Path(unquote(urlparse(url).path))
    if not wheel.is_file():
        pytest.skip("llama-cpp-python was not installed from a wheel file")
    glibc, glibcxx = shared_library_needs(wheel)
    assert glibc and glibc.startswith("2.") and glibcxx and glibcxx.startswith("3.4.")
    here = tg.this_machine()
    assert tg._version(glibc) <= tg._version(here.libc_version)  # it runs here, so it cannot need more


def test_platform_tags_expand_to_the_older_ones_a_machine_runs():
    x86 = expand_platform("manylinux_2_28_x86_64")
    assert x86[0] == "manylinux_2_28_x86_64" and "manylinux_2_17_x86_64" in x86 and "manylinux_2_5_x86_64" in x86
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"} <= set(x86)
    arm = expand_platform("manylinux_2_17_aarch64")
    assert "manylinux2014_aarch64" in arm and "manylinux1_aarch64" not in arm
    assert expand_platform("musllinux_1_2_x86_64") == ["musllinux_1_2_x86_64", "musllinux_1_1_x86_64", "musllinux_1_0_x86_64"]
    assert "macosx_11_0_arm64" in expand_platform("macosx_14_0_arm64")
    assert tg.glibc_of_tag("manylinux2014_x86_64") == (2, 17) and tg.glibc_of_tag("linux_x86_64") is None
    assert tg.machine_of_tag("macosx_11_0_arm64") == "aarch64" and tg.system_of_tag("musllinux_1_2_aarch64") == "Linux"


@pytest.mark.parametrize(("flags", "backend"), [
    ("-DGGML_NATIVE=OFF", "CPU (portable: -DGGML_NATIVE=OFF)"),
    ("-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90", "CUDA (architectures 90)"),
    ("-DGGML_METAL=ON", "Metal"),
    ("-DGGML_HIP=ON", "ROCm/HIP"),
    ("", "CPU (native: may use instructions only the build machine's CPU has)"),
    (None, "unknown (no build.json beside the wheel)"),
])
def test_the_build_flags_name_the_backend(flags, backend):
    assert backend_of(flags) == backend


# ---- manifest and verify ------------------------------------------------------------------------------------------


def small_bundle(folder: Path, files: dict[str, bytes]) -> Path:
    """A bundle file written by the real writer, with a manifest listing `files`."""
    output = folder / "small.tar"
    records = [mf.FileRecord(path, len(data), hashlib.sha256(data).hexdigest()) for path, data in files.items()]
    manifest = mf.Manifest("0.1.0", "2026-01-01T00:00:00Z", "test", "here", bundle_for_here().to_json(), {}, (),
                           "wheels/pip.whl", (), (), tuple(records))
    with BundleWriter(output, root="oi_local-bundle", compression=None) as writer:
        writer.add_bytes(mf.MANIFEST, manifest.dumps().encode())
        for path, data in files.items():
            writer.add_bytes(path, data)
    return output


def unpack(archive: Path, folder: Path) -> Path:
    import tarfile

    with tarfile.open(archive) as tar:
        tar.extractall(folder)
    return folder / "oi_local-bundle"


def test_verify_names_missing_extra_and_different_files(tmp_path):
    files = {"wheels/a-1.0-py3-none-any.whl": b"a" * 100, "models/m.gguf": b"m" * 1000, "install.sh": b"#!/bin/sh\n"}
    archive = small_bundle(tmp_path, files)
    assert verify(archive).ok
    root = unpack(archive, tmp_path / "x")
    assert verify_dir(root).ok
    (root / "models" / "m.gguf").write_bytes(b"m" * 999 + b"x")
    (root / "install.sh").unlink()
    (root / "wheels" / "b-1.0-py3-none-any.whl").write_bytes(b"b")
    (root / ".DS_Store").write_bytes(b"finder")
    report = verify_dir(root)
    assert {(d.path, d.problem) for d in report.differences} == {
        ("models/m.gguf", "sha256 differs"), ("install.sh", "missing"), ("wheels/b-1.0-py3-none-any.whl", "extra")}
    assert not report.installable and "models/m.gguf (sha256 differs)" in str(report.refusal())


def test_an_extra_file_outside_wheels_does_not_block_the_install(tmp_path):
    root = unpack(small_bundle(tmp_path, {"models/m.gguf": b"m"}), tmp_path / "x")
    (root / "README.txt").write_text("notes")
    report = verify_dir(root)
    assert not report.ok and report.installable


def test_a_file_that_is_not_a_bundle_is_said_so(tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(BundleError, match="is not a bundle file"):
        verify(junk)
    with pytest.raises(BundleError, match="does not exist"):
        verify(tmp_path / "nothing.tar")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="manifest.json is missing"):
        verify(tmp_path / "empty")


@pytest.mark.parametrize("text", [
    '{"format": "something-else"}',
    '{"format": "oi_local-bundle", "format_version": 99}',
    "not json",
])
def test_a_foreign_or_damaged_manifest_is_refused(text):
    with pytest.raises(BundleError, match="cannot be read"):
        mf.loads(text)


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside", "wheels/../../x", "a\\b", ""])
def test_manifest_paths_stay_inside_the_bundle(path):
    with pytest.raises(ValueError):
        mf.check_member_path(path)


def test_a_partial_bundle_file_never_stays_behind(tmp_path):
    output = tmp_path / "b.tar"
    source = tmp_path / "model.gguf"
    source.write_bytes(b"x" * 10_000)
    with pytest.raises(BundleError, match="does not match its sha256"), \
            BundleWriter(output, root="oi_local-bundle", compression=None) as writer:
        writer.add_file("models/model.gguf", source, size=10_000, sha256="0" * 64, what="The model m")
    assert list(tmp_path.iterdir()) == [source]


# ---- Ollama's layout ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "path", "shown"), [
    ("llama3.2:1b", "manifests/registry.ollama.ai/library/llama3.2/1b", "llama3.2:1b"),
    ("smollm2", "manifests/registry.ollama.ai/library/smollm2/latest", "smollm2:latest"),
    ("someone/model:q4", "manifests/registry.ollama.ai/someone/model/q4", "registry.ollama.ai/someone/model:q4"),
    ("example.com:5000/ns/m:t", "manifests/example.com:5000/ns/m/t", "example.com:5000/ns/m:t"),
])
def test_ollama_names_map_to_ollamas_manifest_paths(text, path, shown):
    name = ollama.OllamaName.parse(text)
    assert name.manifest_path == path and str(name) == shown


def test_ollama_model_is_read_and_placed_blob_by_blob(tmp_path, test_model_path):
    source = make_ollama_store(tmp_path / "src", test_model_path)
    model = ollama.read_model(source, "smollm2:135m")
    assert len(model.blobs) == 4 and model.blobs[0].size < 1000  # config first
    sources = {b.digest: ollama.blob_path(source, b) for b in model.blobs}
    target = tmp_path / "dst"
    placed = ollama.place(target, model.name, model.manifest, sources)
    assert (placed.blobs_copied, placed.manifest) == (4, "written")
    for blob in model.blobs:
        assert sha256_file(ollama.blob_path(target, blob)).hexdigest() == blob.hex
    assert (target / model.name.manifest_path).read_bytes() == model.manifest
    assert ollama.installed_names(target) == ["smollm2:135m"]
    again = ollama.place(target, model.name, model.manifest, sources)
    assert (again.blobs_copied, again.blobs_present, again.manifest) == (0, 4, "unchanged")
    other = json.loads(model.manifest)
    other["layers"] = other["layers"][:1]
    kept = ollama.place(target, model.name, json.dumps(other).encode(), sources)
    assert kept.manifest == "kept" and (target / model.name.manifest_path).read_bytes() == model.manifest


def test_a_damaged_ollama_blob_is_never_placed(tmp_path, test_model_path):
    source = make_ollama_store(tmp_path / "src", test_model_path)
    model = ollama.read_model(source, "smollm2:135m")
    bad = tmp_path / "bad"
    data = bytearray(ollama.blob_path(source, model.blobs[1]).read_bytes())
    data[1000] ^= 1
    bad.write_bytes(bytes(data))
    sources = {b.digest: ollama.blob_path(source, b) for b in model.blobs} | {model.blobs[1].digest: bad}
    with pytest.raises(BundleError, match="does not match its digest"):
        ollama.place(tmp_path / "dst", model.name, model.manifest, sources)
    blobs = sorted(p.name for p in (tmp_path / "dst" / "blobs").iterdir())
    assert blobs == [model.blobs[0].file_name]  # the config blob before it; no partial file, no manifest
    assert not (tmp_path / "dst" / "manifests").exists()


def test_an_ollama_model_that_is_not_there_is_named_with_what_is(tmp_path, test_model_path):
    source = make_ollama_store(tmp_path / "src", test_model_path)
    with pytest.raises(BundleError, match=r"no Ollama model llama3:latest .* The models there: smollm2:135m"):
        ollama.read_model(source, "llama3")


# ---- catalog merge and the offline default -------------------------------------------------------------------------


def catalog_entry(model_id: str, **extra) -> dict:
    return {"id": model_id, "name": model_id, "format": "gguf", "file": f"{model_id}.gguf", "size_bytes": 1000,
            "sha256": "a" * 64, "sources": [{"kind": "url", "url": f"https://example.invalid/{model_id}.gguf"}],
            "architecture": {"block_count": 2, "kv_heads": 1, "head_dim": 64, "context_length": 2048},
            "capabilities": ["chat"], "license": "apache-2.0", "chat_template": "chatml", **extra}


def fake_bundle_catalog(folder: Path, entries: list[dict]) -> Path:
    (folder / "models").mkdir(parents=True)
    (folder / "models" / "catalog.json").write_text(json.dumps({"models": entries}))
    return folder


def test_catalog_entries_join_a_new_user_catalog(tmp_path, app_home):
    from oi_local.bundle.finish import merge_catalog
    from oi_local.models import catalog

    paths = app_paths().ensure()
    bundle = fake_bundle_catalog(tmp_path / "b", [catalog_entry("mine-1b")])
    merge = merge_catalog(bundle, paths)
    assert merge.added == ("mine-1b",)
    assert catalog.find(catalog.load(paths.user_catalog), "mine-1b").sha256 == "a" * 64


def test_the_targets_own_catalog_entries_are_kept_and_its_comments_survive(tmp_path, app_home):
    from oi_local.bundle.finish import merge_catalog
    from oi_local.models import catalog

    paths = app_paths().ensure()
    mine = catalog_entry("mine-1b", name="My own entry")
    import yaml

    original = "# my notes: keep this comment\nversion: 1\nmodels:\n" + "".join(
        "  " + line + "\n" for line in yaml.safe_dump([mine], sort_keys=False).splitlines())
    paths.user_catalog.write_text(original)
    bundle = fake_bundle_catalog(tmp_path / "b", [catalog_entry("mine-1b", name="The bundle's"), catalog_entry("new-2b")])
    merge = merge_catalog(bundle, paths)
    assert merge.added == ("new-2b",) and merge.kept == ("mine-1b",)
    text = paths.user_catalog.read_text()
    assert text.startswith(original) and "# my notes: keep this comment" in text
    entries = catalog.load(paths.user_catalog)
    assert catalog.find(entries, "mine-1b").name == "My own entry" and catalog.find(entries, "new-2b") is not None


def test_an_entry_the_shipped_catalog_has_the_same_way_is_not_copied(tmp_path, app_home):
    from oi_local.bundle.finish import merge_catalog
    from oi_local.models import catalog

    paths = app_paths().ensure()
    shipped = next(e for e in catalog.load() if e.sha256)
    merge = merge_catalog(fake_bundle_catalog(tmp_path / "b", [{"id": shipped.id, "sha256": shipped.sha256}]), paths)
    assert merge.shipped == (shipped.id,) and not paths.user_catalog.exists()


def test_a_user_catalog_entry_travels_with_its_model(tmp_path, app_home, test_model_path):
    """Packing reads the entry as the user's catalog spells it, and pins the sha256 it did not know."""
    from oi_local.bundle.models import select
    from oi_local.models import catalog
    from oi_local.models.store import ModelStore

    paths = app_paths().ensure()
    mine = tmp_path / "my-smol.gguf"  # a GGUF of the user's own (the test model with a tail: another sha256)
    mine.write_bytes(test_model_path.read_bytes() + b"\0" * 4096)
    entry = catalog_entry("my-smol", file=mine.name, size_bytes=mine.stat().st_size, sha256="unknown",
                          architecture={"block_count": 30, "kv_heads": 3, "head_count": 9, "embedding_length": 576,
                                        "context_length": 8192})
    import yaml

    paths.user_catalog.write_text(yaml.safe_dump({"version": 1, "models": [entry]}, sort_keys=False))
    ModelStore(paths.models, catalog.load(paths.user_catalog)).import_file(mine, model_id="my-smol", progress=False)
    (chosen,) = select(["my-smol"], paths)
    assert chosen.catalog_entry["name"] == "my-smol" and chosen.catalog_entry["sources"] == entry["sources"]
    assert chosen.catalog_entry["sha256"] == sha256_file(mine).hexdigest() == chosen.sha256
    assert chosen.catalog_entry["size_bytes"] == mine.stat().st_size


def test_a_model_not_in_the_store_says_how_to_get_it(app_home):
    from oi_local.bundle.models import select

    with pytest.raises(BundleError, match="download it first with `oi-local models download smollm2-135m`"):
        select(["smollm2-135m"], app_paths().ensure())


def test_the_offline_default_stops_downloads_and_can_be_overridden(app_home, monkeypatch):
    from oi_local import env
    from oi_local.bundle.finish import write_offline_default
    from oi_local.errors import OiLocalError
    from oi_local.models import catalog
    from oi_local.models.store import ModelStore

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("OI_LOCAL_OFFLINE", raising=False)
    paths = app_paths().ensure()
    assert env.hub_offline() is False
    manifest = mf.Manifest("0.1.0", "2026-01-01T00:00:00Z", "", "", {}, {}, (), "", (), (), ())
    write_offline_default(paths, manifest)
    assert env.hub_offline() is True and "offline.json" in env.offline_reason()
    hub_model = next(e for e in catalog.load() if any(s.kind == "hf" for s in e.sources))
    with pytest.raises(OiLocalError, match="offline.json"):
        ModelStore(paths.models, catalog.load()).ensure(hub_model, progress=False)
    monkeypatch.setenv("OI_LOCAL_OFFLINE", "0")
    assert env.hub_offline() is False


# ---- create's options ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "words"), [
    (["--no-models", "--model", "smollm2-135m"], "contradict each other"),
    ([], "Name the models the bundle should carry"),
    (["--no-models", "--platform", "nonsense"], "is not a wheel platform tag"),
    (["--no-models", "--platform", "win_amd64"], "Linux and macOS targets only"),
    (["--no-models", "--python-version", "3"], "is not a Python minor version"),
])
def test_bad_create_options_get_a_clear_error(app_home, tmp_path, args, words):
    result = subprocess.run([sys.executable, "-m", "oi_local", "bundle", "create", *args, "-o", str(tmp_path / "b.tar")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.glob("*.tar*"))


def test_zstd_is_refused_clearly_where_this_python_has_none(app_home, tmp_path):
    if "zstd" in available_compressions():
        pytest.skip("this Python has zstd")
    result = subprocess.run([sys.executable, "-m", "oi_local", "bundle", "create", "--no-models", "--compress", "zstd",
                             "-o", str(tmp_path / "b.tar")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "compression.zstd or the `zstandard` package" in result.stderr


def test_the_bundle_commands_start_without_heavy_imports():
    code = ("import sys; from oi_local.face.cli import parse; parse(['bundle', 'verify', 'x']);"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('litellm', 'llama_cpp', 'rich', 'httpx', 'huggingface_hub')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


def test_the_installer_modules_need_only_the_standard_library(tmp_path):
    """What runs on the target before oi_local exists: copied as a bundle copies it, run with -I -S (no site-packages)."""
    import shutil

    from oi_local.bundle.create import INSTALLER_FILES, PACKAGE_DIR

    for bundle_path, package_path in INSTALLER_FILES.items():
        (tmp_path / bundle_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PACKAGE_DIR / package_path, tmp_path / bundle_path)
    result = subprocess.run([sys.executable, "-I", "-S", "-B", str(tmp_path / "installer" / "install.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "manifest.json is missing" in result.stderr and "Traceback" not in result.stderr
    installer = [sys.executable, "-I", "-S", "-B", str(tmp_path / "installer" / "install.py")]
    shown = subprocess.run([*installer, "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "--prefix DIR" in shown.stdout
    wrong = subprocess.run([*installer, "--prefx", "/tmp/x"], capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 1 and "does not take '--prefx'" in wrong.stderr
