"""What this machine has: RAM, disk, CPU features, GPUs. Knows nothing of models.

The readers of the tools' outputs are in machine/parsers.py (text in, values out). `probe()` runs the tools with short timeouts and never raises: a tool that is not
installed simply means no GPU of that vendor; a tool that is installed and fails is reported in
`Hardware.problems` with the reason.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from oi_local.env import TIMEOUTS
from oi_local.files import nearest_existing

TOOL_TIMEOUT = TIMEOUTS.hardware_tool
MIB = 1024 * 1024
GPU_VENDORS = ("nvidia", "amd", "apple")  # GPUs a llama.cpp build for CUDA, HIP/Vulkan or Metal can use


@dataclass(frozen=True)
class GPU:
    vendor: str  # "nvidia" | "amd" | "apple" | "intel" | "other"
    name: str
    backend: str  # "cuda" | "rocm" | "metal" | "vulkan" | "sycl" | "unknown"
    total_vram_bytes: int | None  # None when unknown
    free_vram_bytes: int | None
    unified_memory: bool = False  # Apple Silicon and most integrated GPUs share system RAM
    driver: str | None = None
    runtime_version: str | None = None  # CUDA / ROCm version where known


@dataclass(frozen=True)
class CPU:
    model: str
    physical_cores: int | None
    logical_cores: int | None
    flags: frozenset[str] = frozenset()  # subset of {"avx", "avx2", "avx512f", "amx", "neon", "f16c", "fma"}
    arch: str = ""  # platform.machine(): "x86_64", "arm64", ...


@dataclass(frozen=True)
class Hardware:
    total_ram_bytes: int | None
    available_ram_bytes: int | None
    free_disk_bytes: int | None  # on the models folder's filesystem
    disk_path: Path | None
    cpu: CPU
    gpus: tuple[GPU, ...] = ()
    os: str = ""
    problems: tuple[str, ...] = field(default_factory=tuple)  # "unknown" parts, each with the reason
    # can the installed llama-cpp-python use a GPU (llama_supports_gpu_offload)? None: no GPU, not asked or
    # not installed; asked only when there is a GPU (machine/llama_build.py)
    llama_cpp_gpu: bool | None = None


def to_dict(hw: Hardware) -> dict:
    """A JSON-ready view (paths as text, flags sorted)."""
    data = asdict(hw)
    data["disk_path"] = str(hw.disk_path) if hw.disk_path else None
    data["cpu"]["flags"] = sorted(hw.cpu.flags)
    data["gpus"] = [asdict(g) for g in hw.gpus]
    data["problems"] = list(hw.problems)
    return data


# --- the probe ---------------------------------------------------------------------------------------


class _ToolFailed(Exception):
    pass


def _run(cmd: list[str], timeout: float = TOOL_TIMEOUT) -> str | None:
    """stdout of a tool; None when it is not installed; _ToolFailed (with the reason) when it fails."""
    exe = shutil.which(cmd[0])
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise _ToolFailed(f"`{' '.join(cmd)}` did not answer within {timeout:.0f} s") from None
    except OSError as error:
        raise _ToolFailed(f"`{cmd[0]}` could not be run ({error.strerror or error})") from None
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise _ToolFailed(f"`{' '.join(cmd)}` failed (exit {done.returncode}): {detail[0] if detail else 'no output'}")
    return done.stdout


def probe(models_dir: Path | None = None, *, state_dir: Path | None = None, ask_llama_cpp: bool = True) -> Hardware:
    """Probe this machine. Never raises: a part that cannot be read is None and explained in `problems`.

    Where there is a GPU, the installed llama.cpp build is asked whether it can use one (a child process the
    first time, then a cached answer in `state_dir`, by default the app's state folder)."""
    problems: list[str] = []
    total_ram = available_ram = None
    try:
        import psutil

        memory = psutil.virtual_memory()
        total_ram, available_ram = int(memory.total), int(memory.available)
    except Exception as error:  # psutil missing or unsupported platform: report, go on
        problems.append(f"RAM unknown: {error}")
    free_disk, disk_path = _free_disk(models_dir, problems)
    try:
        cpu = _probe_cpu(problems)
    except Exception as error:  # never raise: an unexpected platform quirk becomes a reported unknown
        problems.append(f"CPU unknown: {error}")
        cpu = CPU(model="unknown", physical_cores=None, logical_cores=os.cpu_count(), arch=platform.machine())
    try:
        gpus = _probe_gpus(total_ram, problems)
    except Exception as error:
        problems.append(f"GPUs unknown: {error}")
        gpus = []
    llama_cpp_gpu = None
    if ask_llama_cpp and any(g.vendor in GPU_VENDORS for g in gpus):
        llama_cpp_gpu = _ask_llama_cpp(state_dir, problems)
    return Hardware(
        llama_cpp_gpu=llama_cpp_gpu,
        total_ram_bytes=total_ram,
        available_ram_bytes=available_ram,
        free_disk_bytes=free_disk,
        disk_path=disk_path,
        cpu=cpu,
        gpus=tuple(gpus),
        os=f"{platform.system()} {platform.release()} ({platform.machine()})",
        problems=tuple(problems),
    )


def _ask_llama_cpp(state_dir: Path | None, problems: list[str]) -> bool | None:
    from oi_local.machine import llama_build

    try:
        if state_dir is None:
            from oi_local.machine.paths import app_paths

            state_dir = app_paths().state
        build = llama_build.check(state_dir)
    except Exception as error:  # never raise from the probe
        problems.append(f"llama.cpp build unknown: {error}")
        return None
    if build.installed and build.gpu_offload is None and build.problem:
        problems.append(f"llama.cpp build unknown: {build.problem}")
    return build.gpu_offload


def _free_disk(models_dir: Path | None, problems: list[str]) -> tuple[int | None, Path | None]:
    if models_dir is None:
        try:
            from oi_local.machine.paths import app_paths

            models_dir = app_paths().models
        except Exception as error:
            problems.append(f"free disk unknown: no models folder ({error})")
            return None, None
    path = nearest_existing(Path(models_dir).expanduser())  # the folder may not exist yet: where it will be
    try:
        import psutil

        return int(psutil.disk_usage(str(path)).free), path
    except Exception as error:
        problems.append(f"free disk unknown for {path}: {error}")
        return None, path


def _probe_cpu(problems: list[str]) -> CPU:
    from oi_local.machine.parsers import SYSCTL_NAMES, parse_cpuinfo, parse_sysctl

    model: str | None = None
    flags: frozenset[str] = frozenset()
    physical = logical = None
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
        logical = psutil.cpu_count(logical=True)
    except Exception as error:
        problems.append(f"CPU core count unknown: {error}")
        logical = os.cpu_count()
    system = platform.system()
    try:
        if system == "Linux":
            model, flags = parse_cpuinfo(Path("/proc/cpuinfo").read_text())
        elif system == "Darwin":
            lines = []
            for name in SYSCTL_NAMES:
                try:  # each name on its own: sysctl fails for names this Mac lacks (no x86 features on arm64)
                    lines.append(_run(["sysctl", name]) or "")
                except _ToolFailed:
                    continue
            model, flags = parse_sysctl("\n".join(lines))
    except OSError as error:
        problems.append(f"CPU model and features unknown: {error}")
    if not model:
        model = platform.processor() or platform.machine() or "unknown"
    if not flags and system not in ("Linux", "Darwin"):
        problems.append(f"CPU features unknown: not read on {system}")
    return CPU(model=model, physical_cores=physical, logical_cores=logical, flags=flags, arch=platform.machine())


def _probe_gpus(total_ram: int | None, problems: list[str]) -> list[GPU]:
    from oi_local.machine.parsers import (
        parse_nvidia_cuda_version,
        parse_nvidia_smi,
        parse_rocm_smi,
        parse_sysfs_gpus,
        parse_system_profiler,
    )

    gpus: list[GPU] = []
    system = platform.system()
    if system == "Darwin":
        try:
            out = _run(["system_profiler", "SPDisplaysDataType", "-json"], timeout=TIMEOUTS.system_profiler)
            if out is not None:
                gpus += parse_system_profiler(out, total_ram)
        except Exception as error:  # a tool failure or an output shape we do not know: report, go on
            problems.append(f"GPUs unknown: {error}")
        return gpus
    try:
        out = _run(["nvidia-smi", "--query-gpu=name,memory.total,memory.free,driver_version",
                    "--format=csv,noheader,nounits"])
        if out is not None:
            header = _run(["nvidia-smi"]) or ""
            gpus += parse_nvidia_smi(out, parse_nvidia_cuda_version(header))
    except Exception as error:
        if "No devices were found" not in str(error):  # the tool is there, the GPU is not: nothing to report
            problems.append(f"NVIDIA GPU unknown: {error}")
    try:
        out = _run(["rocm-smi", "--showproductname", "--showmeminfo", "vram", "--json"])
        if out is not None:
            gpus += parse_rocm_smi(out)
    except Exception as error:
        problems.append(f"AMD GPU unknown (rocm-smi): {error}")
    if system == "Linux":
        for gpu in parse_sysfs_gpus(Path("/sys/class/drm")):
            if any(g.vendor == gpu.vendor for g in gpus):
                continue  # the vendor's own tool already described these
            if gpu.vendor == "nvidia":
                problems.append(f"{gpu.name}: an NVIDIA GPU is present but nvidia-smi is not installed; its memory is unknown")
            gpus.append(gpu)
    return gpus
