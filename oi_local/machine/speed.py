"""How fast a model will decode on this machine, before it is downloaded.

Decoding one token reads every weight once (the token-embedding table only for one row), so its time is
the bytes read over the rate at which they can be read where they sit, plus a little per layer (and, on the
CPU, per token) for launching the work:

    seconds per token = host bytes / host rate + host layers x PER_LAYER["host"] + PER_TOKEN_HOST
                      + GPU bytes / (GPU bandwidth x GPU_EFFICIENCY) + GPU layers x PER_LAYER["gpu"]
    host rate = min(host bandwidth x HOST_EFFICIENCY, physical cores x PER_CORE_BYTES_PER_SECOND)

- host bandwidth: measured once (threads summing a 256 MiB integer array for 0.15 s, one per physical
  core, as llama.cpp's decode threads read weights), cached in the state folder with the CPU and RAM it was
  measured on. On a machine with few cores, llama.cpp's CPU decode is bound by its cores rather than by
  the memory (dequantizing and multiplying: about PER_CORE_BYTES_PER_SECOND of weights per core);
- GPU bandwidth: the card's published memory bandwidth (a table by name; unknown cards get none and no
  estimate for their part).

The constants come from real runs: on the CPU, random-weight models of real shapes and the test model
against the bandwidth measured in the same run (bench/bench_speed.py, this project's 2-core machine, and the
issue's H200 host: 1.5B-shape F16 on 16 cores, 20.2 tok/s); on the GPU, the issue's H200 runs (1.5B-shape
F16 607.7 tok/s, 8B-shape Q8_0 211.5 tok/s, 70B-shape F16 26.7 tok/s at 4.8 TB/s published).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SLOW_TOKENS_PER_SECOND = 5.0  # below this a model is "slow here" and never recommended
HOST_EFFICIENCY = 0.8  # share of the measured read bandwidth llama.cpp's CPU decode reaches (bench_speed)
PER_CORE_BYTES_PER_SECOND = 20e9  # weights one decode thread dequantizes and multiplies per second (bench_speed)
GPU_EFFICIENCY = 0.85
PER_LAYER_SECONDS = {"host": 200e-6, "gpu": 60e-6}
PER_TOKEN_HOST = 2e-3  # llama-cpp-python's own work per token (sampling, detokenizing) besides the graph
_ARRAY_BYTES = 256 * 1024 * 1024
_CACHE = "bandwidth.json"

# Published memory bandwidth, bytes per second; the first name contained in the GPU's name wins.
GPU_BANDWIDTH: tuple[tuple[str, float], ...] = tuple((name, gbps * 1e9) for name, gbps in (
    ("H200", 4800), ("H100 NVL", 3900), ("H100 PCIe", 2000), ("H100", 3350), ("GH200", 4000), ("B200", 8000),
    ("A100-SXM4-80GB", 2039), ("A100 80GB", 1935), ("A100", 1555), ("L40S", 864), ("L40", 864), ("L4", 300),
    ("A40", 696), ("A10G", 600), ("A10", 600), ("T4", 320), ("V100", 900),
    ("RTX 5090", 1792), ("RTX 5080", 960), ("RTX 4090", 1008), ("RTX 4080", 717), ("RTX 4070 Ti", 504),
    ("RTX 4070", 504), ("RTX 4060 Ti", 288), ("RTX 4060", 272), ("RTX 3090", 936), ("RTX 3080", 760),
    ("RTX 3070", 448), ("RTX 3060", 360), ("RTX A6000", 768), ("RTX 6000 Ada", 960),
    ("MI300X", 5300), ("MI250", 3277), ("MI210", 1638), ("RX 7900 XTX", 960), ("RX 7900 XT", 800),
    ("RX 6900 XT", 512), ("RX 6800", 512),
    ("M4 Max", 546), ("M4 Pro", 273), ("M4", 120), ("M3 Ultra", 819), ("M3 Max", 400), ("M3 Pro", 150),
    ("M3", 100), ("M2 Ultra", 800), ("M2 Max", 400), ("M2 Pro", 200), ("M2", 100), ("M1 Ultra", 800),
    ("M1 Max", 400), ("M1 Pro", 200), ("M1", 68),
))


def gpu_bandwidth(name: str) -> float | None:
    """The published memory bandwidth of a GPU (bytes per second), or None for a card not in the table."""
    for known, bandwidth in GPU_BANDWIDTH:
        if known.lower() in name.lower():
            return bandwidth
    return None


def measure_host_bandwidth(threads: int | None = None, seconds: float = 0.15) -> float:
    """Bytes per second that `threads` threads (one per physical core) read from RAM, summing a large array."""
    import numpy as np

    from oi_local.machine.threads import physical_cores

    threads = max(1, threads or physical_cores())
    # integer sums: the add is cheaper than the read, so the memory sets the pace (a float sum is slower than RAM)
    data = np.ones(_ARRAY_BYTES // 8, dtype=np.int64)
    parts = np.array_split(data, threads)
    for part in parts:  # first touch, outside the timing
        part.sum()
    read = [0] * threads
    stop = time.perf_counter() + seconds

    def work(index: int) -> None:
        part, rounds = parts[index], 0
        while True:
            part.sum()  # numpy releases the GIL: the threads read in parallel
            rounds += 1
            if time.perf_counter() >= stop:
                break
        read[index] = rounds * part.nbytes

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(read) / (time.perf_counter() - started)


def machine_key(hw) -> str:
    """What a host bandwidth measurement holds for: the CPU, its cores and the RAM."""
    cpu = hw.cpu
    return f"{cpu.model}|{cpu.physical_cores}|{cpu.logical_cores}|{hw.total_ram_bytes}"


def save_host_bandwidth(state_dir: Path, machine: str, bytes_per_second: float) -> None:
    from oi_local.files import FileWriteError, write_json_atomic

    try:
        write_json_atomic(Path(state_dir) / _CACHE, {"machine": machine, "host_bytes_per_second": bytes_per_second,
                                                      "measured_at": time.time()})
    except FileWriteError:
        pass  # only a cache: measured again next time


def host_bandwidth(state_dir: Path | None, machine: str) -> float:
    """The measured host bandwidth, from the cache in `state_dir` when it was measured on this `machine`
    (machine_key); measured (and cached) otherwise."""
    if state_dir is not None:
        try:
            data = json.loads((Path(state_dir) / _CACHE).read_text())
            if data.get("machine") == machine and data.get("host_bytes_per_second", 0) > 0:
                return float(data["host_bytes_per_second"])
        except (OSError, ValueError, AttributeError):
            pass
    measured = measure_host_bandwidth()
    if state_dir is not None:
        save_host_bandwidth(state_dir, machine, measured)
    return measured


@dataclass(frozen=True)
class Bandwidth:
    """Where the weights can sit and how fast each place is read (bytes per second)."""

    host: float
    gpu: float | None = None  # None: no GPU, or a card of unknown bandwidth
    unified: bool = False  # Apple Silicon: the GPU reads the same memory at `gpu`
    cores: int | None = None  # threads decoding on the host (None: not a limit)

    @property
    def host_rate(self) -> float:
        """Bytes of weights per second the host's decode reads: memory or cores, whichever is slower."""
        rate = self.host * HOST_EFFICIENCY
        return min(rate, self.cores * PER_CORE_BYTES_PER_SECOND) if self.cores else rate


def for_machine(hw, state_dir: Path | None) -> Bandwidth:
    """The bandwidths of this machine's host memory (measured, cached) and of its best GPU (the table)."""
    host = host_bandwidth(state_dir, machine_key(hw))
    cores = hw.cpu.physical_cores or hw.cpu.logical_cores  # machine/threads.py: every core decodes when idle
    known = [(gpu_bandwidth(g.name), g) for g in hw.gpus]
    known = [(b, g) for b, g in known if b]
    if not known:
        return Bandwidth(host, cores=cores)
    best, gpu = max(known, key=lambda pair: pair[0])
    return Bandwidth(host, best, unified=gpu.unified_memory, cores=cores)


def tokens_per_second(*, host_bytes: int, gpu_bytes: int, host_layers: int, gpu_layers: int,
                      bandwidth: Bandwidth) -> float | None:
    """Decode speed for this placement of the bytes read per token; None when a part's speed is unknown."""
    seconds = 0.0
    if host_bytes:
        seconds += host_bytes / bandwidth.host_rate + host_layers * PER_LAYER_SECONDS["host"] + PER_TOKEN_HOST
    if gpu_bytes:
        if bandwidth.gpu is None:
            return None
        seconds += gpu_bytes / (bandwidth.gpu * GPU_EFFICIENCY) + gpu_layers * PER_LAYER_SECONDS["gpu"]
    return 1.0 / seconds if seconds > 0 else None


def is_slow(rate: float | None) -> bool:
    return rate is not None and rate < SLOW_TOKENS_PER_SECOND


def speed_label(rate: float | None) -> str:
    """"~12 tok/s", "~2 tok/s, slow here", or "" when the speed is not known."""
    if rate is None:
        return ""
    shown = f"{rate:.0f}" if rate >= 10 else f"{rate:.1f}".rstrip("0").rstrip(".")
    return f"~{shown} tok/s" + (", slow here" if is_slow(rate) else "")
