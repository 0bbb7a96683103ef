"""What this machine has: RAM, disk, CPU features, GPUs. Knows nothing of models.

Every reader of a tool's output is a separate `parse_*` function taking text, so recorded outputs can be
tested on any machine. `probe()` runs the tools with short timeouts and never raises: a tool that is not
installed simply means no GPU of that vendor; a tool that is installed and fails is reported in
`Hardware.problems` with the reason.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from oi_local.env import TIMEOUTS

TOOL_TIMEOUT = TIMEOUTS.hardware_tool
MIB = 1024 * 1024


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


def to_dict(hw: Hardware) -> dict:
    """A JSON-ready view (paths as text, flags sorted)."""
    data = asdict(hw)
    data["disk_path"] = str(hw.disk_path) if hw.disk_path else None
    data["cpu"]["flags"] = sorted(hw.cpu.flags)
    data["gpus"] = [asdict(g) for g in hw.gpus]
    data["problems"] = list(hw.problems)
    return data


# --- parsers (text in, values out) ---------------------------------------------------------------------

_X86_FLAGS = {"avx": "avx", "avx2": "avx2", "avx512f": "avx512f", "amx_tile": "amx", "f16c": "f16c", "fma": "fma"}
_ARM_FLAGS = {"asimd": "neon", "neon": "neon", "fphp": "f16c", "asimdhp": "f16c"}


def parse_cpuinfo(text: str) -> tuple[str | None, frozenset[str]]:
    """Model name and the llama.cpp-relevant flags from Linux /proc/cpuinfo (x86 or ARM)."""
    model = None
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        value = value.strip()
        if key in ("model name", "hardware", "cpu model") and not model and value:
            model = value
        elif key == "flags":
            flags |= {_X86_FLAGS[f] for f in value.split() if f in _X86_FLAGS}
        elif key == "features":
            flags |= {_ARM_FLAGS[f] for f in value.split() if f in _ARM_FLAGS}
    return model, frozenset(flags)


def parse_sysctl(text: str) -> tuple[str | None, frozenset[str]]:
    """Model and flags from `sysctl machdep.cpu.brand_string machdep.cpu.features ... hw.optional.arm64`."""
    model = None
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "machdep.cpu.brand_string":
            model = value
        elif key in ("machdep.cpu.features", "machdep.cpu.leaf7_features"):
            words = {w.upper() for w in value.split()}
            mapping = {"AVX1.0": "avx", "AVX2": "avx2", "AVX512F": "avx512f", "F16C": "f16c", "FMA": "fma"}
            flags |= {v for k, v in mapping.items() if k in words}
        elif key in ("hw.optional.arm64", "hw.optional.AdvSIMD", "hw.optional.neon") and value == "1":
            flags.add("neon")
        elif key == "hw.optional.arm.FEAT_FP16" and value == "1":
            flags.add("f16c")
    return model, frozenset(flags)


def _int_or_none(text: str) -> int | None:
    text = text.strip()
    try:
        return int(float(text))
    except ValueError:
        return None  # "[N/A]", "[Not Supported]"


def parse_nvidia_smi(csv_text: str, cuda_version: str | None = None) -> list[GPU]:
    """`nvidia-smi --query-gpu=name,memory.total,memory.free,driver_version --format=csv,noheader,nounits`."""
    gpus = []
    for line in csv_text.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.rsplit(",", 3)]
        if len(parts) != 4:
            continue
        name, total, free, driver = parts
        total_mib, free_mib = _int_or_none(total), _int_or_none(free)
        gpus.append(GPU(
            vendor="nvidia",
            name=name,
            backend="cuda",
            total_vram_bytes=total_mib * MIB if total_mib is not None else None,
            free_vram_bytes=free_mib * MIB if free_mib is not None else None,
            # Memory the driver cannot report separately (GB10, Jetson) is the system's RAM.
            unified_memory=total_mib is None,
            driver=driver or None,
            runtime_version=cuda_version,
        ))
    return gpus


def parse_nvidia_cuda_version(header_text: str) -> str | None:
    """The CUDA version from plain `nvidia-smi` output ("... CUDA Version: 12.4 |")."""
    match = re.search(r"CUDA Version:\s*([0-9][0-9.]*)", header_text)
    return match.group(1) if match else None


def parse_rocm_smi(json_text: str) -> list[GPU]:
    """`rocm-smi --showproductname --showmeminfo vram --json`: {"card0": {"Card series": ..., "VRAM Total Memory (B)": ...}}."""
    data = json.loads(json_text)
    gpus = []
    for key in sorted(data, key=lambda k: (len(k), k)):
        card = data[key]
        if not key.lower().startswith("card") or not isinstance(card, dict):
            continue
        name = next(
            (str(card[k]).strip() for k in ("Card Series", "Card series", "Card model", "Card Model", "Card SKU")
             if str(card.get(k, "")).strip() and str(card.get(k)).strip().lower() not in ("n/a", "unknown")),
            f"AMD GPU ({key})",
        )
        total = _int_or_none(str(card.get("VRAM Total Memory (B)", "")))
        used = _int_or_none(str(card.get("VRAM Total Used Memory (B)", "")))
        gpus.append(GPU(
            vendor="amd",
            name=name,
            backend="rocm",
            total_vram_bytes=total,
            free_vram_bytes=total - used if total is not None and used is not None else None,
            # APUs report a small carve-out as "VRAM" and use system RAM for the rest.
            unified_memory=total is not None and total <= 2 * 1024 * MIB,
            driver=str(card.get("Driver version")) if card.get("Driver version") else None,
        ))
    return gpus


def parse_system_profiler(json_text: str, total_ram_bytes: int | None) -> list[GPU]:
    """`system_profiler SPDisplaysDataType -json`: Apple Silicon (unified, Metal) or Intel Macs (VRAM)."""
    data = json.loads(json_text)
    gpus = []
    for item in data.get("SPDisplaysDataType", []) or []:
        if not isinstance(item, dict):
            continue
        name = str(item.get("sppci_model") or item.get("_name") or "GPU")
        vendor_text = f"{item.get('spdisplays_vendor', '')} {item.get('sppci_vendor', '')} {name}".lower()
        metal = item.get("spdisplays_mtlgpufamilysupport") or item.get("spdisplays_metal")
        vram = _size_text(item.get("spdisplays_vram"))
        shared = _size_text(item.get("spdisplays_vram_shared"))
        if "apple" in vendor_text:
            vendor = "apple"
        elif "intel" in vendor_text:
            vendor = "intel"
        elif "amd" in vendor_text or "ati" in vendor_text.split() or "radeon" in vendor_text:
            vendor = "amd"
        elif "nvidia" in vendor_text:
            vendor = "nvidia"
        else:
            vendor = "other"
        unified = vendor == "apple" or (vram is None and shared is not None)
        if vendor == "apple":
            # Metal lets one process wire about three quarters of unified memory (recommendedMaxWorkingSetSize).
            total = int(total_ram_bytes * 0.75) if total_ram_bytes else None
        else:
            total = vram if vram is not None else shared
        gpus.append(GPU(
            vendor=vendor,
            name=name,
            backend="metal" if metal else "unknown",
            total_vram_bytes=total,
            free_vram_bytes=None,
            unified_memory=unified,
            driver=str(metal).replace("spdisplays_", "") if metal else None,
        ))
    return gpus


def _size_text(text: object) -> int | None:
    """ "8 GB" / "1536 MB" as system_profiler writes them."""
    if not isinstance(text, str):
        return None
    match = re.match(r"^\s*([0-9.]+)\s*([KMGT]?B)\s*$", text, re.IGNORECASE)
    if not match:
        return None
    power = {"B": 0, "KB": 1, "MB": 2, "GB": 3, "TB": 4}[match.group(2).upper()]
    return int(float(match.group(1)) * 1024**power)


_SYSCTL_NAMES = (
    "machdep.cpu.brand_string", "machdep.cpu.features", "machdep.cpu.leaf7_features",
    "hw.optional.arm64", "hw.optional.AdvSIMD", "hw.optional.arm.FEAT_FP16",
)

_PCI_VENDORS = {"0x10de": "nvidia", "0x1002": "amd", "0x8086": "intel"}


def parse_sysfs_gpus(drm_root: Path) -> list[GPU]:
    """GPUs under /sys/class/drm/card*/device: AMD VRAM from mem_info_vram_*, others by PCI vendor only."""
    gpus = []
    if not drm_root.is_dir():
        return gpus
    for card in sorted(drm_root.glob("card[0-9]*")):
        if "-" in card.name:  # connectors such as card0-HDMI-A-1
            continue
        device = card / "device"
        vendor = _PCI_VENDORS.get(_read(device / "vendor") or "", None)
        if vendor is None:
            continue
        total = _int_or_none(_read(device / "mem_info_vram_total") or "")
        used = _int_or_none(_read(device / "mem_info_vram_used") or "")
        name = _read(device / "product_name") or f"{vendor.upper() if vendor == 'amd' else vendor.capitalize()} GPU ({card.name})"
        integrated = vendor == "intel" or (total is not None and total <= 2 * 1024 * MIB)
        backend = {"amd": "rocm" if total is not None else "vulkan", "intel": "sycl", "nvidia": "cuda"}[vendor]
        gpus.append(GPU(
            vendor=vendor,
            name=name,
            backend=backend,
            total_vram_bytes=total,
            free_vram_bytes=total - used if total is not None and used is not None else None,
            unified_memory=integrated,
        ))
    return gpus


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


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


def probe(models_dir: Path | None = None) -> Hardware:
    """Probe this machine. Never raises: a part that cannot be read is None and explained in `problems`."""
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
    return Hardware(
        total_ram_bytes=total_ram,
        available_ram_bytes=available_ram,
        free_disk_bytes=free_disk,
        disk_path=disk_path,
        cpu=cpu,
        gpus=tuple(gpus),
        os=f"{platform.system()} {platform.release()} ({platform.machine()})",
        problems=tuple(problems),
    )


def _free_disk(models_dir: Path | None, problems: list[str]) -> tuple[int | None, Path | None]:
    if models_dir is None:
        try:
            from oi_local.machine.paths import app_paths

            models_dir = app_paths().models
        except Exception as error:
            problems.append(f"free disk unknown: no models folder ({error})")
            return None, None
    path = Path(models_dir).expanduser().absolute()
    while not path.exists() and path != path.parent:  # the folder may not exist yet: measure where it will be
        path = path.parent
    try:
        import psutil

        return int(psutil.disk_usage(str(path)).free), path
    except Exception as error:
        problems.append(f"free disk unknown for {path}: {error}")
        return None, path


def _probe_cpu(problems: list[str]) -> CPU:
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
            for name in _SYSCTL_NAMES:
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
