"""Readers of the tools' outputs that describe a machine's CPU and GPUs: text in, values out.

Each is a separate function taking the tool's text, so recorded outputs (tests/fixtures/hardware) can be
tested on any machine; machine/hardware.py runs the tools and hands their output here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from oi_local.machine.hardware import GPU, MIB

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


SYSCTL_NAMES = (
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
