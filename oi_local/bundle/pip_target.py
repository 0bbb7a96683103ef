"""The machine the wheels are for, as pip sees it: a Python version and platform tags (this machine's by default)."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from oi_local.bundle import target as tg


@dataclass(frozen=True)
class WheelTarget:
    """What the wheels are fetched for: this machine (no platforms given) or another one."""

    python: str  # "3.11"
    platforms: tuple[str, ...] = ()  # wheel platform tags, e.g. ("manylinux_2_28_aarch64",); () = this machine
    implementation: str = "cp"

    @property
    def foreign(self) -> bool:
        return bool(self.platforms) or self.python != f"{sys.version_info[0]}.{sys.version_info[1]}"

    @property
    def abi(self) -> str:
        return f"{self.implementation}{self.python.replace('.', '')}"

    def pip_options(self) -> list[str]:
        if not self.foreign:
            return []
        options = ["--python-version", self.python, "--implementation", self.implementation, "--abi", self.abi]
        for platform in self.expanded_platforms():
            options += ["--platform", platform]
        return options

    def expanded_platforms(self) -> list[str]:
        if not self.platforms:
            from packaging.tags import platform_tags

            return list(platform_tags())
        out: list[str] = []
        for tag in self.platforms:
            out += expand_platform(tag)
        return list(dict.fromkeys(out))

    def supported_tags(self) -> list:
        from packaging import tags

        if not self.foreign:
            return list(tags.sys_tags())
        version = tuple(int(p) for p in self.python.split("."))
        platforms = self.expanded_platforms()
        return (list(tags.cpython_tags(version, abis=[self.abi], platforms=platforms))
                + list(tags.compatible_tags(version, self.abi, platforms)))

    def marker_environment(self) -> dict[str, str]:
        from packaging.markers import default_environment

        environment = dict(default_environment())
        if not self.foreign:
            return environment
        tag = self.platforms[0] if self.platforms else ""
        system = tg.system_of_tag(tag) or environment["platform_system"]
        machine = tg.machine_of_tag(tag) or environment["platform_machine"]
        if system == "Darwin" and machine == "aarch64":
            machine = "arm64"
        environment.update(
            implementation_name="cpython", platform_python_implementation="CPython", python_version=self.python,
            python_full_version=f"{self.python}.0", implementation_version=f"{self.python}.0",
            platform_system=system, platform_machine=machine, sys_platform={"Darwin": "darwin", "Windows": "win32"}.get(system, "linux"),
            os_name="nt" if system == "Windows" else "posix", platform_release="", platform_version="",
        )
        return environment


def expand_platform(tag: str) -> list[str]:
    """A platform tag and the older ones a machine of that kind also runs (what pip's --platform wants)."""
    match = re.match(r"^manylinux_(\d+)_(\d+)_(\w+)$", tag)
    if match:
        major, minor, arch = int(match.group(1)), int(match.group(2)), match.group(3)
        out = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 4, -1)]
        legacy = [("manylinux2014", 17), ("manylinux2010", 12), ("manylinux1", 5)]
        out += [f"{name}_{arch}" for name, needed in legacy if major == 2 and minor >= needed
                and (name == "manylinux2014" or arch in ("x86_64", "i686"))]
        return out
    match = re.match(r"^musllinux_(\d+)_(\d+)_(\w+)$", tag)
    if match:
        major, minor, arch = int(match.group(1)), int(match.group(2)), match.group(3)
        return [f"musllinux_{major}_{m}_{arch}" for m in range(minor, -1, -1)]
    match = re.match(r"^macosx_(\d+)_(\d+)_(\w+)$", tag)
    if match:
        from packaging.tags import mac_platforms

        return list(mac_platforms((int(match.group(1)), int(match.group(2))), match.group(3)))
    return [tag]
