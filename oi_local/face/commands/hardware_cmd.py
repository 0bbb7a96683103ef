"""`oi-local hardware [--json]`: what this machine has, as a table or as JSON."""

from __future__ import annotations

import json

from oi_local.face.invocation import Invocation
from oi_local.files import format_bytes
from oi_local.machine import hardware
from oi_local.machine.paths import app_paths


def _size(n: int | None) -> str:
    return "unknown" if n is None else format_bytes(n)


def run(args: Invocation) -> int:
    paths = app_paths()
    hw = hardware.probe(paths.models, state_dir=paths.state)
    if getattr(args, "json", False):
        print(json.dumps(hardware.to_dict(hw), indent=2))
        return 0
    from rich.console import Console
    from rich.markup import escape
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
        table.add_row(f"GPU {index}", escape(f"{gpu.name} [{gpu.vendor}, {runtime}{driver}]: {memory}"))
    from oi_local.machine.summary import gpu_build_note, llama_build_text

    table.add_row("llama.cpp build", llama_build_text(hw))
    for problem in hw.problems:
        table.add_row("[yellow]unknown[/yellow]", escape(problem))
    console = Console()
    console.print(table)
    note = gpu_build_note(hw)
    if note:
        console.print(note, style="yellow", markup=False, highlight=False)
    return 0
