"""Every wheel the installed oi_local needs, at the exact versions installed now.

The set is found by walking oi_local's requirements through the installed distributions' metadata
(markers evaluated for the target, extras followed as they are asked for). Each wheel then comes from:
- oi_local itself: built here from its source (it is installed editable from a checkout);
- llama-cpp-python: see llama_wheel.py;
- everything else: `pip download --only-binary=:all: --no-deps name==version` (with pip's --platform,
  --python-version, --implementation and --abi for another target), kept in a cache between runs. A
  dependency published only as a pure-Python sdist is built into a wheel here; one that needs compiling
  is a clear error: nothing compiles on the target.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from oi_local.bundle.manifest import BundleError
from oi_local.bundle.pip_target import WheelTarget

ROOT_PROJECT = "oi-local"
LLAMA_PROJECT = "llama-cpp-python"
PIP_PROJECT = "pip"


@dataclass(frozen=True)
class Wheel:
    name: str  # project name as published
    version: str
    path: Path
    origin: str  # "index", "built", "cache" (scripts/install.sh's), "given"


@dataclass(frozen=True)
class Pin:
    name: str  # canonical
    version: str
    display: str  # as the project spells it


def cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("oi_local", appauthor=False)) / "bundle-wheels"


# ---- which distributions --------------------------------------------------------------------------------------


def requirement_pins(target: WheelTarget, *, cache: Path, say: Callable[[str], None] = lambda _: None) -> list[Pin]:
    """oi-local and everything it needs on the target, at the versions installed here."""
    from packaging.requirements import Requirement

    environment = target.marker_environment()
    pins: dict[str, Pin] = {}
    requires: dict[str, list[str]] = {}
    done: dict[str, set[str]] = {}  # the extras ("" = the plain requirements) already followed
    queue: list[tuple[str, frozenset[str], str, object]] = [(ROOT_PROJECT, frozenset(), ROOT_PROJECT, None)]
    while queue:
        name, extras, wanted_by, specifier = queue.pop(0)
        key = canonical(name)
        if key not in pins:
            version, display, requires[key] = _find(name, specifier, wanted_by, target, cache=cache, say=say)
            pins[key] = Pin(key, version, display)
            done[key] = set()
        todo = ({""} | set(extras)) - done[key]
        if not todo:
            continue
        done[key] |= todo
        for text in requires[key]:
            requirement = Requirement(text)
            if requirement.marker is None:
                applies = "" in todo
            else:
                applies = any(requirement.marker.evaluate({**environment, "extra": extra}) for extra in todo)
            if applies:
                queue.append((requirement.name, frozenset(requirement.extras), pins[key].display, requirement.specifier))
    return sorted(pins.values(), key=lambda p: p.name)


def _find(name: str, specifier, wanted_by: str, target: WheelTarget, *, cache: Path,
          say: Callable[[str], None]) -> tuple[str, str, list[str]]:
    from importlib import metadata

    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        dist = None
    if dist is not None and (specifier is None or specifier.contains(dist.version, prereleases=True)):
        return dist.version, dist.metadata["Name"], list(dist.requires or [])
    if not target.foreign:
        have = f"version {dist.version} is installed" if dist is not None else "it is not installed"
        raise BundleError(
            f"{wanted_by} needs {name}{specifier or ''}, but {have} here, so the bundle cannot hold the "
            "versions this installation uses. Repair the installation first (scripts/install.sh, or "
            f"`pip install '{name}{specifier or ''}'`) and make the bundle again."
        )
    # needed only on the other target (a marker true there): the newest wheel that fits it
    say(f"{name}: needed on the target only; fetching the newest wheel that fits {specifier or ''}")
    wheel = _download_one(f"{name}{specifier or ''}", target, cache=cache)
    meta = _wheel_metadata(wheel)
    return meta["version"], meta["name"], meta["requires"]


# ---- oi_local's own wheel ---------------------------------------------------------------------------------------


def source_root() -> Path | None:
    import oi_local

    root = Path(oi_local.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and re.search(r'^name\s*=\s*"oi-local"', pyproject.read_text(), re.M):
        return root
    return None


def own_wheel(pin: Pin, *, cache: Path, say: Callable[[str], None]) -> Wheel:
    """oi_local's wheel, built from its source (a clean copy of it, so stale build files never get in)."""
    root = source_root()
    if root is None:
        raise BundleError(
            "oi_local is not installed from a source checkout here, so its own wheel cannot be built. Make the "
            "bundle from a checkout (git clone, then scripts/install.sh)."
        )
    say(f"building the oi_local {pin.version} wheel from {root}")
    with tempfile.TemporaryDirectory(dir=cache, prefix=".build-") as folder:
        source = Path(folder) / "src"
        source.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "MANIFEST.in"):
            if (root / name).is_file():
                shutil.copy2(root / name, source / name)
        shutil.copytree(root / "oi_local", source / "oi_local",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        out = Path(folder) / "out"
        _pip(["wheel", "--no-deps", "--quiet", "-w", str(out), str(source)],
             failure=f"Building oi_local's wheel from {root} failed")
        built = _only_wheel(out)
        name, version = name_version(built)
        if name != ROOT_PROJECT or version != pin.version:
            raise BundleError(f"The wheel built from {root} is {built.name}, not oi-local {pin.version}; "
                              "reinstall oi_local from this checkout (scripts/install.sh) and try again.")
        kept = cache / ".own"
        kept.mkdir(exist_ok=True)
        target_path = kept / built.name
        shutil.move(str(built), target_path)
    return Wheel(pin.display, pin.version, target_path, "built")


def installed_wheel_file(pin: Pin) -> Path | None:
    """The wheel file pip installed this distribution from, checked against the hash pip recorded."""
    from importlib import metadata

    try:
        raw = metadata.distribution(pin.display).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if not raw:
        return None
    data = json.loads(raw)
    url = urlparse(data.get("url", ""))
    if url.scheme != "file" or not url.path.endswith(".whl"):
        return None
    path = Path(unquote(url.path))
    if not path.is_file():
        raise BundleError(
            f"{pin.display} {pin.version} was installed from {path}, which is gone (a cleaned cache?). Run "
            "scripts/install.sh again (it rebuilds and caches the wheel), or give one with --llama-wheel PATH."
        )
    recorded = (data.get("archive_info") or {}).get("hashes", {}).get("sha256")
    if recorded:
        from oi_local.files import sha256_file

        if sha256_file(path).hexdigest() != recorded:
            raise BundleError(
                f"{path} is not the file {pin.display} was installed from (its sha256 changed). Run "
                "scripts/install.sh again to rebuild it, or give a wheel with --llama-wheel PATH."
            )
    return path


def installed_from_wheel_file(pin: Pin) -> Wheel | None:
    """A dependency pip installed from a local wheel file (not from an index): that very file."""
    if pin.name == PIP_PROJECT:
        return None
    try:
        path = installed_wheel_file(pin)
    except BundleError:
        return None
    return Wheel(pin.display, pin.version, path, "given") if path else None


# ---- fetching from the index, through the cache ---------------------------------------------------------------


def fetch(pins: list[Pin], target: WheelTarget, *, cache: Path, say: Callable[[str], None],
          notes: list[str]) -> list[Wheel]:
    supported = {str(t): i for i, t in enumerate(target.supported_tags())}
    found: dict[str, Wheel] = {}
    missing = []
    for pin in pins:
        path = _cached(pin, cache, supported)
        if path is not None:
            found[pin.name] = Wheel(pin.display, pin.version, path, "index")
        else:
            missing.append(pin)
    if missing:
        say(f"downloading {len(missing)} wheels (pip download --only-binary=:all: --no-deps)")
    while missing:
        failed = _download_batch(missing, target, cache)
        for pin in missing:
            if pin is failed:
                continue
            path = _cached(pin, cache, supported)
            if path is None:
                raise BundleError(f"pip downloaded no wheel of {pin.display}=={pin.version} that fits the target; "
                                  "make the bundle again (pip's output is above).")
            found[pin.name] = Wheel(pin.display, pin.version, path, "index")
        if failed is None:
            break
        found[failed.name] = _wheel_from_sdist(failed, cache, say=say)
        notes.append(f"{failed.display} {failed.version}: no wheel on the index; built from its pure-Python sdist")
        missing = [p for p in missing if p is not failed and p.name not in found]
    return [found[p.name] for p in pins]


def _cached(pin: Pin, cache: Path, supported: dict[str, int]) -> Path | None:
    from packaging.utils import parse_wheel_filename

    best: tuple[int, Path] | None = None
    for path in cache.glob("*.whl"):
        try:
            name, version, _, tags = parse_wheel_filename(path.name)
        except ValueError:
            continue
        if canonical(name) != pin.name or str(version) != _normal_version(pin.version):
            continue
        rank = min((supported[str(t)] for t in tags if str(t) in supported), default=None)
        if rank is not None and (best is None or rank < best[0]) and _readable_wheel(path):
            best = (rank, path)
    return best[1] if best else None


def _download_batch(pins: list[Pin], target: WheelTarget, cache: Path) -> Pin | None:
    """Download the pins into the cache; the pin that has no wheel at all (then the others are not done)."""
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as folder:
        result = _pip(["download", "--only-binary=:all:", "--no-deps", "--quiet", "-d", folder, *target.pip_options(),
                       *[f"{p.display}=={p.version}" for p in pins]], check=False)
        for path in Path(folder).glob("*.whl"):
            shutil.move(str(path), cache / path.name)
        if result.returncode == 0:
            return None
        match = re.search(r"No matching distribution found for (\S+?)==", result.stderr)
        failed = next((p for p in pins if match and canonical(match.group(1)) == p.name), None)
        if failed is None:
            raise BundleError(
                "pip could not download the wheels for the bundle: " + _last_lines(result.stderr) + ". Check the "
                "network and the package index (pip config list), then run the same command again."
            )
        return failed


def _download_one(requirement: str, target: WheelTarget, cache: Path) -> Path:
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as folder:
        _pip(["download", "--only-binary=:all:", "--no-deps", "--quiet", "-d", folder, *target.pip_options(), requirement],
             failure=f"No wheel of {requirement} fits the target")
        path = _only_wheel(Path(folder))
        kept = cache / path.name
        shutil.move(str(path), kept)
        return kept


def _wheel_from_sdist(pin: Pin, cache: Path, *, say: Callable[[str], None]) -> Wheel:
    """A dependency with no wheel: its sdist built here, accepted only when the result is pure Python."""
    from packaging.utils import parse_wheel_filename

    say(f"{pin.display} {pin.version} has no wheel on the index; building one from its sdist")
    with tempfile.TemporaryDirectory(dir=cache, prefix=".sdist-") as folder:
        sdists = Path(folder) / "sdist"
        _pip(["download", "--no-binary=:all:", "--no-deps", "--quiet", "-d", str(sdists), f"{pin.display}=={pin.version}"],
             failure=f"{pin.display}=={pin.version} has neither a wheel nor a source distribution on the index")
        source = next(sdists.iterdir())
        out = Path(folder) / "out"
        _pip(["wheel", "--no-deps", "--quiet", "-w", str(out), str(source)],
             failure=f"Building a wheel of {pin.display}=={pin.version} from its sdist failed")
        built = _only_wheel(out)
        _, _, _, tags = parse_wheel_filename(built.name)
        if not all(t.abi == "none" and t.platform == "any" for t in tags):
            raise BundleError(
                f"{pin.display} {pin.version} has no wheel for the target on the index and its source needs "
                f"compiling ({built.name}), so the bundle cannot carry it: nothing is compiled on the target. "
                f"Install a version of {pin.display} that publishes wheels, then make the bundle again."
            )
        kept = cache / built.name
        shutil.move(str(built), kept)
    return Wheel(pin.display, pin.version, kept, "built")


# ---- small helpers ----------------------------------------------------------------------------------------------


def requirements_text(wheels: tuple[Wheel, ...]) -> str:
    """wheels/requirements.txt: every wheel of the bundle pinned (pip resolves them offline, --no-index)."""
    lines = [f"{w.name}=={w.version}" for w in sorted(wheels, key=lambda w: canonical(w.name))]
    return "# every wheel of this bundle, pinned; installed with pip --no-index --find-links wheels/\n" + "\n".join(lines) + "\n"


def _pip(arguments: list[str], *, failure: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *arguments],
                            capture_output=True, text=True)
    if check and result.returncode != 0:
        raise BundleError(f"{failure or 'pip failed'}: {_last_lines(result.stderr or result.stdout)}. Fix that "
                          "(network, package index, build tools) and run the same command again; no bundle was written.")
    return result


def _last_lines(text: str, n: int = 3) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and "is ignored: it is neither" not in line]
    return " / ".join(lines[-n:]) or "no output"


def _only_wheel(folder: Path) -> Path:
    found = sorted(Path(folder).glob("*.whl"))
    if len(found) != 1:
        raise BundleError(f"Expected one wheel in {folder}, found {len(found)}; run the same command again.")
    return found[0]


def name_version(path: Path) -> tuple[str, str]:
    from packaging.utils import parse_wheel_filename

    try:
        name, version, _, _ = parse_wheel_filename(Path(path).name)
    except ValueError as error:
        raise BundleError(f"{Path(path).name} is not a wheel file name ({error}).") from error
    return canonical(name), str(version)


def _wheel_metadata(path: Path) -> dict:
    from email.parser import HeaderParser

    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        headers = HeaderParser().parsestr(archive.read(name).decode("utf-8"))
    return {"name": headers["Name"], "version": headers["Version"], "requires": headers.get_all("Requires-Dist") or []}


def _readable_wheel(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith(".dist-info/RECORD") for n in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _normal_version(version: str) -> str:
    from packaging.version import Version

    return str(Version(version))
