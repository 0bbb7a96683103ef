"""How many threads a llama.cpp server computes with, and how its waiting threads wait: chosen for the
machine's load when the server starts.

llama-cpp-python's wheel uses OpenMP. Decode tokens/s of a server measured alone on this project's 2-core
machine (bench/RESULTS.md, "Decode speed"), as 2 threads spinning / 1 thread / 2 threads sleeping:

    idle machine:           test model (135M) 81 / 75 / 16     1B-shape Q4_0 40 / 23 / 15
    one core kept busy:     test model (135M) 2.6 / 81 / 50    1B-shape Q4_0 1.2 / 26 / 23

Spinning threads are the fastest on an idle machine and collapse (20-30x slower) as soon as one other
process wants a core, because every step waits for the thread that is not running. So: an idle machine
gets every physical core with OpenMP's default waiting; a busy one the cores left free (at least one) with
OMP_WAIT_POLICY=PASSIVE. With the agent as the client on the same 2 cores (the README's one-shot task,
bench/RESULTS.md "Local mode"), 2 spinning threads also finished the model's work soonest (1.37 s against
1.91 s with 1 thread and 1.74 s with 2 sleeping ones) once the client no longer imported litellm beside it.

"Busy" is measured as the server starts: the cores other processes keep busy over BUSY_WINDOW seconds (the
machine's CPU time less that of this process and its children, so oi_local's own start-up, a Python kernel
starting beside the server, does not count). The 1-minute load average lags: right after a download it
still says busy. A user's own OMP_WAIT_POLICY or thread count wins.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

BUSY_CORES = 0.5  # cores kept busy by other processes from which the machine counts as busy
BUSY_WINDOW = 0.08  # seconds over which that is measured (CPU time comes in 10 ms ticks)


@dataclass(frozen=True)
class ThreadPlan:
    threads: int  # for decoding and for prompt batches alike
    passive: bool  # OMP_WAIT_POLICY=PASSIVE: waiting threads sleep instead of spinning
    reason: str


def choose(physical_cores: int, busy: float) -> ThreadPlan:
    """The plan for a machine with `physical_cores` of which other processes keep `busy` cores busy."""
    cores = max(1, physical_cores)
    if busy < BUSY_CORES:
        return ThreadPlan(cores, False, f"idle machine ({busy:.1f} cores busy): {cores} threads, spinning")
    free = max(1, cores - round(busy))
    return ThreadPlan(free, True, f"busy machine ({busy:.1f} cores busy): {free} of {cores} cores, threads sleep "
                                  "when waiting")


def physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def busy_cores(window: float = BUSY_WINDOW) -> float:
    """How many cores other processes keep busy now: the machine's CPU time over `window` seconds less that of
    this process and its children (oi_local's own start-up is not load the server will compete with)."""
    import psutil

    def busy_seconds(times) -> float:
        idle = times.idle + getattr(times, "iowait", 0.0)
        return sum(times) - idle - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)

    def own_seconds(processes) -> float:
        total = 0.0
        for process in processes:
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.Error:  # ended meanwhile
                pass
        return total

    try:
        me = psutil.Process()
        tree = [me, *me.children(recursive=True)]
        machine, own, started = psutil.cpu_times(), own_seconds(tree), time.perf_counter()
        time.sleep(window)
        machine_after, own_after = psutil.cpu_times(), own_seconds(tree)
    except (OSError, psutil.Error):  # not readable here: count the machine as idle
        return 0.0
    elapsed = time.perf_counter() - started
    others = busy_seconds(machine_after) - busy_seconds(machine) - (own_after - own)
    return max(0.0, others / elapsed) if elapsed > 0 else 0.0


def for_this_machine(threads: int | None = None) -> ThreadPlan:
    """The plan now; `threads` (the user's) replaces the count, the waiting still follows the load."""
    plan = choose(physical_cores(), busy_cores())
    if threads:
        return ThreadPlan(threads, plan.passive, f"{threads} threads as asked; {plan.reason.split(':')[0]}")
    return plan
