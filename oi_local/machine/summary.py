"""The machine in a line for people: the explorer's first screen, `oi-local hardware`, `oi-local serve`.

One unit convention everywhere: decimal bytes (oi_local.files.format_bytes: 1.5 GB = 1.5 x 10^9 bytes), as
disks, downloads and GPU boxes are sold.
"""

from __future__ import annotations

from oi_local.files import format_bytes
from oi_local.machine.hardware import GPU_VENDORS, Hardware
from oi_local.machine.llama_build import REBUILD_HINT


def unused_gpus(hw: Hardware) -> list[str]:
    """Names of the GPUs the installed llama.cpp build cannot use (it is a CPU-only build); [] otherwise."""
    if hw.llama_cpp_gpu is not False:
        return []
    names: list[str] = []
    for gpu in hw.gpus:
        if gpu.vendor in GPU_VENDORS and gpu.name not in names:
            names.append(gpu.name)
    return names


def gpu_build_note(hw: Hardware | None) -> str | None:
    """"GPU: NVIDIA H200 · llama.cpp build: CPU only — rebuild with `scripts/install.sh --gpu`" when the
    installed llama.cpp cannot use the GPU that is there; None when there is nothing to say."""
    names = unused_gpus(hw) if hw is not None else []
    if not names:
        return None
    return f"GPU: {', '.join(names)} · llama.cpp build: CPU only — {REBUILD_HINT}"


def llama_build_text(hw: Hardware) -> str:
    """The installed llama.cpp build as `oi-local hardware` shows it."""
    note = gpu_build_note(hw)
    if note:
        return f"CPU only: it cannot use the GPU here — {REBUILD_HINT}"
    if hw.llama_cpp_gpu:
        return "GPU offload supported"
    if hw.llama_cpp_gpu is None and any(g.vendor in GPU_VENDORS for g in hw.gpus):
        return "unknown (see below)"
    return "CPU (no GPU here to use)"


def hardware_line(hw: Hardware | None) -> str:
    """RAM, GPUs and free disk in one line, and the GPU build note on a second where there is one."""
    if hw is None:
        return "Hardware: unknown"
    ram = format_bytes(hw.total_ram_bytes) if hw.total_ram_bytes else "unknown"
    free = f" ({format_bytes(hw.available_ram_bytes)} free)" if hw.available_ram_bytes else ""
    if hw.gpus:
        gpu = ", ".join(
            f"{g.name}" + (f" {format_bytes(g.total_vram_bytes)}" if g.total_vram_bytes else "") + f" [{g.backend}]"
            for g in hw.gpus
        )
    else:
        gpu = "none"
    disk = format_bytes(hw.free_disk_bytes) + " free" if hw.free_disk_bytes is not None else "unknown"
    line = f"RAM {ram}{free} · GPU {gpu} · disk {disk}"
    note = gpu_build_note(hw)
    return f"{line}\n{note}" if note else line
