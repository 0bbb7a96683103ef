"""`oi-local bundle create`: oi_local's wheels, the chosen models and an installer in one file."""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from oi_local import __version__
from oi_local.bundle import ROOT_NAME, archive, llama_wheel, ollama, wheels
from oi_local.bundle import manifest as mf
from oi_local.bundle import target as tg
from oi_local.bundle.manifest import BundleError, FileRecord, Manifest, ModelRecord, OllamaRecord, WheelRecord
from oi_local.bundle.pip_target import WheelTarget
from oi_local.files import format_bytes, nearest_existing, sha256_file
from oi_local.machine.paths import AppPaths

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # oi_local/
# what runs on the target before oi_local is installed: bundle path -> file of this package
INSTALLER_FILES = {
    "installer/install.py": "bundle/bootstrap.py",
    "installer/oi_local/__init__.py": "__init__.py",
    "installer/oi_local/errors.py": "errors.py",
    "installer/oi_local/env.py": "env.py",
    "installer/oi_local/files.py": "files.py",
    "installer/oi_local/bundle/__init__.py": "bundle/__init__.py",
    "installer/oi_local/bundle/manifest.py": "bundle/manifest.py",
    "installer/oi_local/bundle/target.py": "bundle/target.py",
    "installer/oi_local/bundle/verify.py": "bundle/verify.py",
    "installer/oi_local/bundle/ollama.py": "bundle/ollama.py",
    "installer/oi_local/bundle/installer.py": "bundle/installer.py",
}
OVERHEAD_ALLOWANCE = 1.02  # tar headers, the manifest and the installer, on top of the files themselves


@dataclass(frozen=True)
class CreateOptions:
    output: Path
    models: tuple[str, ...] = ()
    ollama_models: tuple[str, ...] = ()
    no_models: bool = False
    python_version: str | None = None  # "3.12": wheels for that Python (default: this one)
    platforms: tuple[str, ...] = ()  # wheel platform tags of another target (default: this machine)
    llama_wheel: Path | None = None
    compress: str | None = None  # None, "auto", "gzip", "zstd"
    command: str = ""
    ollama_dir: Path | None = None  # default: OLLAMA_MODELS or ~/.ollama/models
    wheel_cache: Path | None = None


@dataclass(frozen=True)
class Created:
    path: Path
    manifest: Manifest
    compression: str | None
    file_bytes: int  # the bundle file
    model_bytes: int
    wheel_bytes: int
    seconds: float
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class _Member:
    path: str
    size: int
    sha256: str
    source: Path | None = None
    data: bytes | None = None
    mode: int = 0o644
    what: str | None = None


@dataclass(frozen=True)
class WheelSet:
    wheels: tuple[wheels.Wheel, ...]  # all of them, pip's and llama-cpp-python's included
    llama: llama_wheel.LlamaBuild
    pip: wheels.Wheel
    notes: tuple[str, ...] = field(default=())


def collect_wheels(target: WheelTarget, *, given_llama: Path | None = None, cache: Path | None = None,
                   say: Callable[[str], None] = lambda _: None) -> WheelSet:
    """Every wheel for the target, each checked to be a wheel of the pinned version that fits the target."""
    from importlib import metadata

    cache = Path(cache or wheels.cache_dir())
    cache.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    pins = wheels.requirement_pins(target, cache=cache, say=say)
    by_name = {p.name: p for p in pins}
    if wheels.LLAMA_PROJECT not in by_name:
        raise BundleError("llama-cpp-python is not among oi_local's installed requirements; reinstall oi_local "
                          "(scripts/install.sh) and try again.")
    llama = llama_wheel.llama_build(by_name[wheels.LLAMA_PROJECT], target, given=given_llama)
    found: list[wheels.Wheel] = [llama.wheel, wheels.own_wheel(by_name[wheels.ROOT_PROJECT], cache=cache, say=say)]
    wanted = [p for p in pins if p.name not in (wheels.ROOT_PROJECT, wheels.LLAMA_PROJECT)]
    local = {p.name: w for p in wanted if (w := wheels.installed_from_wheel_file(p)) is not None}
    pip_pin = wheels.Pin(wheels.PIP_PROJECT, metadata.version(wheels.PIP_PROJECT), wheels.PIP_PROJECT)
    wanted = [p for p in wanted if p.name not in local and p.name != wheels.PIP_PROJECT] + [pip_pin]
    found += local.values()
    found += wheels.fetch(wanted, target, cache=cache, say=say, notes=notes)
    pip = next(w for w in found if wheels.canonical(w.name) == wheels.PIP_PROJECT)
    return WheelSet(tuple(found), llama, pip, tuple(notes))


def output_path(output: Path, compression: str | None) -> Path:
    """The file name with the suffix its compression gets (x.tar + gzip -> x.tar.gz)."""
    output = Path(output)
    name = output.name
    for suffix in (".tar.gz", ".tgz", ".tar.zst", ".tar"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return output.with_name(name + archive.SUFFIXES[compression])


def compression_of(output: Path, wanted: str | None) -> str | None:
    if wanted is None:
        name = Path(output).name
        if name.endswith((".tar.gz", ".tgz")):
            return "gzip"
        if name.endswith(".tar.zst"):
            return archive.choose_compression("zstd")
        return None
    return archive.choose_compression(wanted)


def create(options: CreateOptions, paths: AppPaths, *, say: Callable[[str], None] = lambda _: None,
           progress: Callable[[str, int], contextlib.AbstractContextManager] | None = None) -> Created:
    """Write the bundle file; `progress(label, total_bytes)` gives a context yielding advance(n) (a progress bar)."""
    started = time.monotonic()
    if options.no_models and (options.models or options.ollama_models):
        raise BundleError("--no-models and --model/--ollama-model contradict each other; give one or the other.")
    if not options.no_models and not options.models and not options.ollama_models:
        raise BundleError("Name the models the bundle should carry with --model ID (repeat it for more; "
                          "`oi-local models list` shows the ones on disk) or --ollama-model NAME, or give "
                          "--no-models for the program alone.")
    compression = compression_of(options.output, options.compress)
    output = output_path(options.output, compression)
    here = tg.this_machine()
    wheel_target = WheelTarget(options.python_version or here.python, tuple(options.platforms))
    _check_target_options(wheel_target)

    from oi_local.bundle import models as model_selection

    chosen = model_selection.select(list(options.models), paths) if options.models else []
    ollama_root = Path(options.ollama_dir) if options.ollama_dir else ollama.models_dir()
    ollama_models = [ollama.read_model(ollama_root, name) for name in dict.fromkeys(options.ollama_models)]
    say(f"collecting the wheels for {'this machine' if not wheel_target.foreign else _words(wheel_target)}")
    wheel_set = collect_wheels(wheel_target, given_llama=options.llama_wheel, cache=options.wheel_cache, say=say)

    members: list[_Member] = []
    for bundle_path, package_path in INSTALLER_FILES.items():
        members.append(_file_member(bundle_path, PACKAGE_DIR / package_path))
    wheel_records = []
    for wheel in wheel_set.wheels:
        member = _file_member(f"{mf.WHEELS_DIR}/{wheel.path.name}", wheel.path)
        members.append(member)
        wheel_records.append(WheelRecord(wheel.name, wheel.version, member.path, wheel.origin))
    members.append(_bytes_member(mf.REQUIREMENTS, wheels.requirements_text(wheel_set.wheels).encode()))
    model_records = []
    for model in chosen:
        bundle_path = f"{mf.MODELS_DIR}/{model.source.name}"
        members.append(_Member(bundle_path, model.size, model.sha256, source=model.source, what=f"The model {model.id}"))
        model_records.append(ModelRecord(model.id, model.name, model.format, bundle_path, model.size, model.sha256))
    if chosen:
        import json

        entries = [m.catalog_entry for m in chosen if m.catalog_entry is not None]
        members.append(_bytes_member(mf.CATALOG, (json.dumps({"models": entries}, indent=1) + "\n").encode()))
    ollama_records, blobs_seen = [], set()
    for model in ollama_models:
        manifest_path = f"{mf.OLLAMA_DIR}/{model.name.manifest_path}"
        members.append(_bytes_member(manifest_path, model.manifest))
        for blob in model.blobs:
            if blob.digest in blobs_seen:
                continue
            blobs_seen.add(blob.digest)
            members.append(_Member(f"{mf.OLLAMA_DIR}/blobs/{blob.file_name}", blob.size, blob.hex,
                                   source=ollama.blob_path(ollama_root, blob), what=f"The Ollama blob {blob.digest} of {model.name}"))
        ollama_records.append(OllamaRecord(str(model.name), manifest_path, tuple(b.digest for b in model.blobs)))
    install_sh = _file_member(mf.INSTALL_SH, PACKAGE_DIR / "bundle" / "install.sh", mode=0o755)

    bundle_target = _bundle_target(wheel_target, wheel_set, here)
    llama = wheel_set.llama
    manifest = Manifest(
        oi_local_version=__version__,
        created=dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        command=options.command, made_on=f"{here.describe(needs=False)}, oi_local {__version__}",
        target=bundle_target.to_json(),
        llama_cpp={"version": llama.wheel.version, "wheel": f"{mf.WHEELS_DIR}/{llama.wheel.path.name}",
                   "cmake_args": llama.cmake_args, "backend": llama.backend, "built_on": llama.built_on,
                   "origin": llama.wheel.origin},
        wheels=tuple(wheel_records), pip_wheel=f"{mf.WHEELS_DIR}/{wheel_set.pip.path.name}",
        models=tuple(model_records), ollama=tuple(ollama_records),
        files=tuple(FileRecord(m.path, m.size, m.sha256) for m in [install_sh, *members]),
        notes=wheel_set.notes,
    )
    manifest_bytes = manifest.dumps().encode()
    _check_space(output, manifest.payload_bytes)
    say(f"writing {output} ({format_bytes(manifest.payload_bytes)} in {len(manifest.files)} files"
        + (f", {compression}" if compression else "") + ")")
    bar = progress("packing", manifest.payload_bytes) if progress else contextlib.nullcontext(None)
    with bar as on_bytes, archive.BundleWriter(output, root=ROOT_NAME, compression=compression) as writer:
        _write(writer, install_sh, on_bytes)
        writer.add_bytes(mf.MANIFEST, manifest_bytes)
        for member in members:
            _write(writer, member, on_bytes)
    model_bytes = sum(m.size for m in model_records) + sum(
        m.size for m in members if m.path.startswith(f"{mf.OLLAMA_DIR}/blobs/"))
    return Created(output, manifest, compression, output.stat().st_size, model_bytes,
                   sum(m.size for m in members if m.path.startswith(f"{mf.WHEELS_DIR}/") and m.path.endswith(".whl")),
                   time.monotonic() - started, wheel_set.notes)


def _check_target_options(target: WheelTarget) -> None:
    import re

    if not re.match(r"^3\.\d{1,2}$", target.python):
        raise BundleError(f"--python-version {target.python} is not a Python minor version; write it like 3.12.")
    systems = {tg.system_of_tag(p) for p in target.platforms}
    if "Windows" in systems:
        raise BundleError("A bundle installs with a POSIX shell script (install.sh): Linux and macOS targets only.")
    machines = {tg.machine_of_tag(p) for p in target.platforms}
    if None in systems or None in machines:
        bad = next(p for p in target.platforms if tg.system_of_tag(p) is None or tg.machine_of_tag(p) is None)
        raise BundleError(f"--platform {bad} is not a wheel platform tag; write one like manylinux_2_28_x86_64, "
                          "manylinux_2_17_aarch64 or macosx_11_0_arm64.")
    if len(systems) > 1 or len(machines) > 1:
        raise BundleError(f"--platform {' '.join(target.platforms)} names more than one kind of machine; a bundle "
                          "is for one (make one bundle per target).")


def _bundle_target(target: WheelTarget, wheel_set: WheelSet, here: tg.Target) -> tg.Target:
    from packaging.utils import parse_wheel_filename

    platform_tags: set[str] = set()
    glibc_needs, mac_needs = [], []
    for wheel in wheel_set.wheels:
        tags = {t.platform for t in parse_wheel_filename(wheel.path.name)[3]}
        platform_tags |= tags - {"any"}
        glibc = [v for t in tags if (v := tg.glibc_of_tag(t))]
        if glibc:
            glibc_needs.append(".".join(map(str, min(glibc))))
        mac = [v for t in tags if (v := tg.macos_of_tag(t))]
        if mac:
            mac_needs.append(".".join(map(str, min(mac))))
    llama = wheel_set.llama
    glibc_needs.append(llama.glibc_needed)
    if target.platforms:
        tag = target.platforms[0]
        system, machine = tg.system_of_tag(tag), tg.machine_of_tag(tag)
        libc = "musl" if tag.startswith("musllinux") else "glibc" if system == "Linux" else None
    else:
        system, machine, libc = here.system, here.machine, here.libc
    return tg.Target(
        implementation="CPython", python=target.python, system=system, machine=machine,
        libc=libc, libc_version=tg.newest(glibc_needs) if libc == "glibc" else None,
        libstdcxx=llama.glibcxx_needed if system == "Linux" else None,
        macos=tg.newest(mac_needs) if system == "Darwin" else None,
        platform_tags=tuple(sorted(platform_tags)),
    )


def _file_member(bundle_path: str, source: Path, *, mode: int = 0o644) -> _Member:
    return _Member(bundle_path, source.stat().st_size, sha256_file(source).hexdigest(), source=source, mode=mode)


def _bytes_member(bundle_path: str, data: bytes) -> _Member:
    import hashlib

    return _Member(bundle_path, len(data), hashlib.sha256(data).hexdigest(), data=data)


def _write(writer: archive.BundleWriter, member: _Member, on_bytes: Callable[[int], None] | None) -> None:
    if member.data is not None:
        writer.add_bytes(member.path, member.data, mode=member.mode)
    else:
        writer.add_file(member.path, member.source, size=member.size, sha256=member.sha256, mode=member.mode,
                        on_bytes=on_bytes, what=member.what)


def _check_space(output: Path, payload: int) -> None:
    folder = nearest_existing(output.parent)
    free = shutil.disk_usage(folder).free
    needed = int(payload * OVERHEAD_ALLOWANCE)
    if needed > free:
        raise BundleError(f"Not enough disk space for the bundle: it needs about {format_bytes(needed)} in {folder}, "
                          f"which has {format_bytes(free)} free. Free some space or write it elsewhere with -o PATH; "
                          "nothing was written.")


def _words(target: WheelTarget) -> str:
    return f"Python {target.python}" + (f" on {', '.join(target.platforms)}" if target.platforms else "")
