"""What this machine has: RAM, disk, CPU features, GPUs. Knows nothing of models."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


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


def probe(models_dir: Path | None = None) -> Hardware:
    """Probe this machine. Never raises: a part that cannot be read is None and explained in `problems`."""
    raise NotImplementedError
