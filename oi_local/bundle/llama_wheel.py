"""The llama-cpp-python wheel a bundle carries, and how it was built.

By default the very wheel pip installed it from (pip's direct_url.json names it): scripts/install.sh builds it
once and caches it with a build.json beside it (CMAKE_ARGS, Python, machine). For another target, the one
given with --llama-wheel. Its shared libraries say which glibc and libstdc++ they need.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from oi_local.bundle import target as tg
from oi_local.bundle.manifest import BundleError
from oi_local.bundle.pip_target import WheelTarget
from oi_local.bundle.wheels import LLAMA_PROJECT, Pin, Wheel, installed_wheel_file, name_version, read_json


@dataclass(frozen=True)
class LlamaBuild:
    wheel: Wheel
    cmake_args: str | None
    backend: str  # "CPU (portable: -DGGML_NATIVE=OFF)", "CUDA", "Metal", ...
    built_on: dict | None  # build.json beside the cached wheel
    glibc_needed: str | None  # newest GLIBC_ symbol version its shared libraries ask for
    glibcxx_needed: str | None  # newest GLIBCXX_ (libstdc++) version they ask for


def llama_build(pin: Pin, target: WheelTarget, *, given: Path | None) -> LlamaBuild:
    if given is not None:
        path = Path(given).expanduser().resolve()
        if not path.is_file() or path.suffix != ".whl":
            raise BundleError(f"--llama-wheel {given}: there is no wheel file there. Give the path of a "
                              "llama_cpp_python-*.whl built for the target.")
        origin = "given"
    else:
        if target.platforms:  # (another Python alone is fine when the wheel says py3-none: it loads its library with ctypes)
            raise BundleError(
                f"This bundle is for another machine (--platform {' '.join(target.platforms)}), and the "
                "llama-cpp-python wheel installed here was built for this one. Build llama-cpp-python for the target "
                f"(on a machine like it: CMAKE_ARGS=... pip wheel --no-deps llama-cpp-python=={pin.version}) and give "
                "the wheel with --llama-wheel PATH."
            )
        path = installed_wheel_file(pin)
        if path is None:
            raise BundleError(
                f"llama-cpp-python {pin.version} was not installed from a wheel file this program can find (pip "
                "records none). Run scripts/install.sh, which builds it once and caches the wheel, or give a wheel "
                "with --llama-wheel PATH."
            )
        origin = "cache"
    name, version = name_version(path)
    if name != LLAMA_PROJECT:
        raise BundleError(f"{path.name} is not a llama-cpp-python wheel; give the llama_cpp_python-*.whl file.")
    _check_llama_tags(path, target)
    built_on = read_json(path.parent / "build.json")
    cmake_args = built_on.get("cmake_args") if built_on else None
    glibc, glibcxx = shared_library_needs(path)
    return LlamaBuild(Wheel("llama_cpp_python", version, path, origin), cmake_args, backend_of(cmake_args),
                      built_on, glibc, glibcxx)


def _check_llama_tags(path: Path, target: WheelTarget) -> None:
    from packaging.utils import parse_wheel_filename

    _, _, _, tags = parse_wheel_filename(path.name)
    if target.platforms:
        want_system, want_machine = tg.system_of_tag(target.platforms[0]), tg.machine_of_tag(target.platforms[0])
    else:
        here = tg.this_machine()
        want_system, want_machine = here.system, here.machine
    for tag in tags:
        python_ok = (tag.interpreter == target.abi or tag.abi == "abi3"
                     or (tag.interpreter.startswith("py3") and tag.abi == "none"))
        platform_ok = (tg.system_of_tag(tag.platform) == want_system
                       and tg.machine_of_tag(tag.platform) in (want_machine, "universal2"))
        if python_ok and platform_ok:
            return
    raise BundleError(
        f"{path.name} is not built for the target (Python {target.python}, "
        + (", ".join(target.platforms) if target.platforms else "this machine") +
        "). Give a llama-cpp-python wheel built for it with --llama-wheel PATH."
    )


def backend_of(cmake_args: str | None) -> str:
    if cmake_args is None:
        return "unknown (no build.json beside the wheel)"
    text = cmake_args.upper()

    def on(flag: str) -> bool:
        return re.search(rf"-D{flag}=(ON|1|TRUE|YES)\b", text) is not None

    arch = re.search(r"-DCMAKE_CUDA_ARCHITECTURES=(\S+)", cmake_args)
    if on("GGML_CUDA") or on("LLAMA_CUBLAS") or on("GGML_CUBLAS"):
        return "CUDA" + (f" (architectures {arch.group(1)})" if arch else "")
    if on("GGML_HIP") or on("GGML_HIPBLAS") or on("LLAMA_HIPBLAS"):
        return "ROCm/HIP"
    if on("GGML_METAL"):
        return "Metal"
    if on("GGML_VULKAN"):
        return "Vulkan"
    if re.search(r"-DGGML_NATIVE=(OFF|0|FALSE|NO)\b", text):
        return "CPU (portable: -DGGML_NATIVE=OFF)"
    return "CPU (native: may use instructions only the build machine's CPU has)"


def shared_library_needs(wheel: Path) -> tuple[str | None, str | None]:
    """The newest GLIBC_ and GLIBCXX_ symbol versions the wheel's shared libraries ask for."""
    glibc, glibcxx = [], []
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if re.search(r"\.so(\.\d+)*$", info.filename):
                data = archive.read(info)
                glibc.append(tg.newest_symbol_version(data, b"GLIBC_"))
                glibcxx.append(tg.newest_symbol_version(data, b"GLIBCXX_"))
    return tg.newest(glibc), tg.newest(glibcxx)
