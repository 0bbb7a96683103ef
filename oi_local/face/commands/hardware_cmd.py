"""`oi-local hardware [--json]`: what this machine has, as a table or as JSON."""

from __future__ import annotations

import json

from oi_local.face.invocation import Invocation
from oi_local.machine import hardware
from oi_local.machine.paths import app_paths


def _size(n: int | None) -> str:
    if n is None:
        return "unknown"
    return f"{n / 1024**3:.1f} GiB"


def run(args: Invocation) -> int:
    hw = hardware.probe(app_paths().models)
    if getattr(args, "json", False):
        print(json.dumps(hardware.to_dict(hw), indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="This machine", show_header=True, header_style="bold")
    table.add_column("Part")
    table.add_column("What")
    table.add_row("OS", hw.os)
    table.add_row("RAM", f"{_size(hw.total_ram_bytes)} total, {_size(hw.available_ram_bytes)} available")
    table.add_row("Disk", f"{_size(hw.free_disk_bytes)} free on {hw.disk_path or 'unknown'} (models folder)")
    cpu = hw.cpu
    cores = f"{cpu.physical_cores or '?'} physical / {cpu.logical_cores or '?'} logical cores"
    table.add_row("CPU", f"{cpu.model} ({cpu.arch}), {cores}")
    table.add_row("CPU features", ", ".join(sorted(cpu.flags)) or "none detected")
    if not hw.gpus:
        table.add_row("GPU", "none detected: models run on the CPU")
    for index, gpu in enumerate(hw.gpus):
        memory = "unified with RAM" if gpu.unified_memory and gpu.total_vram_bytes is None else (
            f"{_size(gpu.total_vram_bytes)} total, {_size(gpu.free_vram_bytes)} free"
            + (" (shared with RAM)" if gpu.unified_memory else "")
        )
        runtime = " ".join(x for x in (gpu.backend, gpu.runtime_version or "") if x)
        driver = f", driver {gpu.driver}" if gpu.driver else ""
        table.add_row(f"GPU {index}", f"{gpu.name} [{gpu.vendor}, {runtime}{driver}]: {memory}")
    for problem in hw.problems:
        table.add_row("[yellow]unknown[/yellow]", problem)
    Console().print(table)
    return 0
