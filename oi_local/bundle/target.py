"""The machine a bundle is made for, and the machine it is being installed on.

A bundle's target says what its wheels need: the Python (implementation and minor version), the system and
CPU architecture, and the oldest C library (glibc, from the manylinux tags and from the symbol versions the
shared libraries of a locally built `linux_<arch>` wheel ask for; libstdc++ likewise) or macOS version.
A machine's says what it has. `problems(bundle, machine)` lists every difference that would break it.

Standard library only: the installer runs this on the target before anything else.
"""

from __future__ import annotations

import platform
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from oi_local.bundle.manifest import BundleError

_MACHINE_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "armv8": "aarch64"}
_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


@dataclass(frozen=True)
class Target:
    implementation: str  # "CPython"
    python: str  # "3.11"
    system: str  # "Linux" | "Darwin"
    machine: str  # "x86_64" | "aarch64" (macOS's arm64 is spelled aarch64 here too)
    libc: str | None = None  # Linux: "glibc" | "musl"
    libc_version: str | None = None  # a bundle: the oldest it needs; a machine: the one it has
    libstdcxx: str | None = None  # GLIBCXX version: a bundle: the newest it asks for; a machine: the newest it has
    macos: str | None = None  # a bundle: the oldest macOS it needs; a machine: its version
    platform_tags: tuple[str, ...] = ()  # a bundle: the platform tags of its wheels

    def to_json(self) -> dict:
        data = asdict(self)
        data["platform_tags"] = list(self.platform_tags)
        return data

    @classmethod
    def from_json(cls, data: dict) -> Target:
        try:
            return cls(**{**data, "platform_tags": tuple(data.get("platform_tags") or ())})
        except TypeError as error:
            raise BundleError(f"The bundle's target in manifest.json is not readable ({error}); the bundle is "
                              "damaged: copy it again. Nothing was installed.") from error

    def describe(self, *, needs: bool) -> str:
        """"CPython 3.11 on Linux x86_64 (glibc 2.34 or newer, libstdc++ GLIBCXX_3.4.30)"; needs=False: what a machine has."""
        extra = []
        if self.libc:
            extra.append(f"{self.libc} {self.libc_version}{' or newer' if needs else ''}" if self.libc_version else self.libc)
        if self.libstdcxx:
            extra.append(f"libstdc++ with GLIBCXX_{self.libstdcxx}" if needs else f"libstdc++ up to GLIBCXX_{self.libstdcxx}")
        elif not needs and self.system == "Linux":
            extra.append("no libstdc++ found")
        if self.macos:
            extra.append(f"macOS {self.macos}{' or newer' if needs else ''}")
        arch = "arm64" if self.system == "Darwin" and self.machine == "aarch64" else self.machine
        text = f"{self.implementation} {self.python} on {self.system} {arch}"
        return f"{text} ({', '.join(extra)})" if extra else text

    def platform_hint(self) -> str:
        """A --platform value that describes this machine (for `oi-local bundle create`)."""
        if self.system == "Darwin":
            major = (self.macos or "11").split(".")[0]
            return f"macosx_{major}_0_{'arm64' if self.machine == 'aarch64' else self.machine}"
        if self.libc == "musl":
            return f"musllinux_1_2_{self.machine}"
        major, minor = (_version(self.libc_version or "2.17") + (17,))[:2]
        return f"manylinux_{major}_{minor}_{self.machine}"


def normalize_machine(machine: str) -> str:
    machine = machine.lower()
    return _MACHINE_ALIASES.get(machine, machine)


def this_machine() -> Target:
    system = platform.system()
    machine = normalize_machine(platform.machine())
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    implementation = platform.python_implementation()
    if system == "Darwin":
        return Target(implementation, python, system, machine, macos=platform.mac_ver()[0] or None)
    libc, libc_version = platform.libc_ver()
    if not libc and list(Path("/lib").glob("ld-musl-*.so.1")):
        libc = "musl"
    return Target(implementation, python, system, machine, libc=libc or None, libc_version=libc_version or None,
                  libstdcxx=_libstdcxx_version())


def problems(bundle: Target, machine: Target) -> list[str]:
    """Every reason the bundle's wheels would not work on `machine` (empty: it fits)."""
    found = []
    if bundle.implementation != machine.implementation:
        found.append(f"the wheels are for {bundle.implementation}, this Python is {machine.implementation}")
    if bundle.python != machine.python:
        found.append(f"the wheels are for Python {bundle.python}, this python3 is {machine.python}")
    if bundle.system != machine.system:
        found.append(f"the wheels are for {bundle.system}, this is {machine.system}")
    if bundle.machine not in (machine.machine, "universal2"):
        found.append(f"the wheels are for {bundle.machine} processors, this one is {machine.machine}")
    if bundle.libc and bundle.system == machine.system == "Linux":
        if machine.libc != bundle.libc:
            found.append(f"the wheels need {bundle.libc}, this system has {machine.libc or 'an unknown C library'}")
        elif bundle.libc_version and machine.libc_version and _version(machine.libc_version) < _version(bundle.libc_version):
            found.append(f"the wheels need {bundle.libc} {bundle.libc_version} or newer, this system has {machine.libc_version}")
    if bundle.libstdcxx and bundle.system == machine.system == "Linux":
        if machine.libstdcxx is None:
            found.append("llama.cpp needs libstdc++ (libstdc++6), which this system does not have")
        elif _version(machine.libstdcxx) < _version(bundle.libstdcxx):
            found.append(f"llama.cpp needs libstdc++ with GLIBCXX_{bundle.libstdcxx}, this system's stops at "
                         f"GLIBCXX_{machine.libstdcxx} (a newer libstdc++6 is needed)")
    if bundle.macos and machine.macos and _version(machine.macos) < _version(bundle.macos):
        found.append(f"the wheels need macOS {bundle.macos} or newer, this is macOS {machine.macos}")
    return found


def check(bundle: Target, machine: Target, *, install_command: str = "oi_local-bundle/install.sh") -> None:
    """Raise BundleError, one paragraph naming both targets, when the bundle does not fit this machine."""
    found = problems(bundle, machine)
    if not found:
        return
    same_machine = bundle.system == machine.system and bundle.machine in (machine.machine, "universal2")
    only_python = same_machine and all("Python" in problem for problem in found)
    if only_python:
        remake = f"`oi-local bundle create --python-version {machine.python} ...`"
    else:
        remake = (f"`oi-local bundle create --python-version {machine.python} --platform {machine.platform_hint()} "
                  "--llama-wheel PATH ...`, with a llama-cpp-python wheel built for such a machine")
    use_other = (f", or run the installer with a Python {bundle.python} if this machine has one: "
                 f"PYTHON=python{bundle.python} {install_command}") if only_python else ""
    raise BundleError(
        f"This bundle was made for {bundle.describe(needs=True)}; this machine has {machine.describe(needs=False)} "
        f"({'; '.join(found)}). Nothing was installed. Make a bundle for this machine on a connected one "
        f"({remake}){use_other}."
    )


# ---- platform tags and shared libraries ------------------------------------------------------------------


def glibc_of_tag(tag: str) -> tuple[int, int] | None:
    """The glibc a manylinux platform tag promises to need at most: manylinux_2_28_x86_64 -> (2, 28)."""
    match = re.match(r"^manylinux_(\d+)_(\d+)_", tag)
    if match:
        return int(match.group(1)), int(match.group(2))
    return _LEGACY_MANYLINUX.get(tag.split("_", 1)[0])


def macos_of_tag(tag: str) -> tuple[int, int] | None:
    match = re.match(r"^macosx_(\d+)_(\d+)_", tag)
    return (int(match.group(1)), int(match.group(2))) if match else None


def machine_of_tag(tag: str) -> str | None:
    if tag == "any":
        return None
    for arch in ("x86_64", "aarch64", "arm64", "universal2", "i686", "armv7l", "ppc64le", "s390x", "riscv64"):
        if tag.endswith("_" + arch):
            return normalize_machine(arch)
    return None


def system_of_tag(tag: str) -> str | None:
    if tag.startswith(("manylinux", "musllinux", "linux")):
        return "Linux"
    if tag.startswith("macosx"):
        return "Darwin"
    if tag.startswith("win"):
        return "Windows"
    return None


def newest_symbol_version(data: bytes, prefix: bytes) -> str | None:
    """The newest symbol version named in a shared library (b"GLIBC_" -> "2.34", b"GLIBCXX_" -> "3.4.30")."""
    found = {m.decode() for m in re.findall(re.escape(prefix) + rb"(\d+(?:\.\d+)+)", data)}
    return max(found, key=_version) if found else None


def newest(versions) -> str | None:
    present = [v for v in versions if v]
    return max(present, key=_version) if present else None


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:4])


def _libstdcxx_version() -> str | None:
    """The newest GLIBCXX version of the libstdc++ this process would load (None: there is none)."""
    import ctypes

    try:
        ctypes.CDLL("libstdc++.so.6")
    except OSError:
        return None
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for line in maps.splitlines():
        path = line.split()[-1] if line.split() else ""
        if "libstdc++.so" in path:
            try:
                return newest_symbol_version(Path(path).read_bytes(), b"GLIBCXX_")
            except OSError:
                return None
    return None
