"""Will a model fit this machine, and with which context window and GPU layers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fit:
    fits: bool
    n_ctx: int
    n_gpu_layers: int  # 0 on CPU; -1 never: the exact count
    max_tokens: int  # always < n_ctx
    weights_bytes: int
    kv_cache_bytes: int
    compute_bytes: int
    total_bytes: int  # all of it, margin included
    available_bytes: int | None  # what the estimate was compared against
    reason: str  # one line, e.g. "needs 6.1 GB, 4.2 GB free"
