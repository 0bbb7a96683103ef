"""Will a model fit this machine, and with which context window and GPU layers.

The estimate is what a llama.cpp server holds at its worst, with the context full:

    weights (the GGUF tensors, memory-mapped and all touched during inference)
  + KV cache   2 x layers x n_ctx x kv_heads x head_dim x bytes per element (f16 by default)
  + compute    llama.cpp's scratch for one micro-batch of prompt (n_ubatch = 512 tokens) without flash
               attention: the attention scores and mask (n_ubatch x n_ctx x (heads + 1) x 4 bytes), the
               CPU backend's f16 copy of the scores for the value product (n_ubatch x n_ctx x heads x 2)
               and the activations (about 6 x n_ubatch x embedding x 4); on a GPU the whole reserved
               buffer counts, which also holds the logits of a micro-batch (n_ubatch x vocabulary x 4)
  + runtime    the server process itself (Python, llama-cpp-python, uvicorn): measured about 80 MiB
  + margin     5 % of the above.

The compute terms were calibrated against a real llama.cpp server (bench/bench_fit.py): on CPU only the
pages llama.cpp touches count towards resident memory, and with the context filled that is the
attention part, not the reserved logits part. This assumes the server runs with logits_all off
(llama-cpp-python's server defaults it on, which adds n_ctx x vocabulary x 4 bytes as the context fills);
pass logits_all=True to estimate that configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from oi_local.machine.hardware import GPU, Hardware
from oi_local.models.catalog import Architecture, CatalogEntry

MIB = 1024 * 1024
GB = 1000**3
N_UBATCH = 512  # llama.cpp's default physical batch
RUNTIME_OVERHEAD = 80 * MIB  # llama_cpp.server process without model: measured (bench/bench_fit.py)
MARGIN = 0.05
STANDARD_CONTEXTS = (32768, 16384, 8192, 4096, 2048)
MIN_CONTEXT = 2048
LAST_RESORT_CONTEXTS = (1024,)  # below 2048 only when nothing else fits
DEFAULT_VOCAB = 65536  # when neither catalog nor header says
GPU_RESERVE = 300 * MIB  # driver context per GPU (CUDA/ROCm) that models cannot use
OFFLOAD_VENDORS = {"nvidia": "cuda", "amd": "rocm", "apple": "metal"}


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
    overhead_bytes: int = 0  # the server process itself
    margin_bytes: int = 0
    gpu_bytes: int = 0  # the part placed in GPU memory
    device: str = "cpu"  # "cpu" | "gpu" | "partial" | "unified"


def max_tokens_for(n_ctx: int) -> int:
    """A quarter of the window for the reply, between 256 and 4096 tokens, always below n_ctx."""
    return max(1, min(n_ctx - 1, max(256, min(4096, n_ctx // 4))))


def kv_cache_bytes(arch: Architecture, n_ctx: int, kv_bytes_per_element: int = 2) -> int:
    return 2 * arch.block_count * n_ctx * arch.kv_heads * arch.head_dim * kv_bytes_per_element


def _head_count(arch: Architecture) -> int:
    if arch.head_count:
        return arch.head_count
    if arch.embedding_length and arch.head_dim:
        return max(arch.kv_heads, arch.embedding_length // arch.head_dim)
    return arch.kv_heads


def compute_bytes(arch: Architecture, n_ctx: int, *, on_gpu: bool = False, vocab_size: int | None = None) -> int:
    """llama.cpp's scratch memory for one micro-batch at this context (see the module docstring)."""
    ubatch = min(N_UBATCH, n_ctx)
    heads = _head_count(arch)
    embedding = arch.embedding_length or heads * arch.head_dim
    activations = 6 * ubatch * embedding * 4
    attention = ubatch * n_ctx * (heads + 1) * 4 + activations
    work = ubatch * n_ctx * heads * 2
    if not on_gpu:
        return attention + work
    logits = ubatch * (vocab_size or getattr(arch, "vocab_size", None) or DEFAULT_VOCAB) * 4 + activations
    return max(attention, logits)


def _contexts(arch: Architecture, n_ctx: int | None, max_ctx: int) -> list[int]:
    if n_ctx is not None:
        return [n_ctx]
    trained = arch.context_length
    cap = min(trained, max_ctx)
    options = sorted({c for c in (trained, *STANDARD_CONTEXTS) if c <= cap}, reverse=True)
    return options or [cap]


def _gb(n: int | float) -> str:
    return f"{n / GB:.1f} GB" if n >= 0.1 * GB else f"{n / GB:.2f} GB"


@dataclass(frozen=True)
class _Budget:
    ram: int | None  # usable RAM for the model
    vram: int  # usable GPU memory (0 when no offload)
    gpu_name: str
    unified: bool


def _budget(hw: Hardware) -> _Budget:
    ram = hw.available_ram_bytes
    if ram is None and hw.total_ram_bytes is not None:
        ram = hw.total_ram_bytes // 2
    if ram is not None and hw.total_ram_bytes:
        ram -= min(GB // 2, hw.total_ram_bytes // 20)  # leave the OS and the user's programs some room
    usable = [g for g in hw.gpus if OFFLOAD_VENDORS.get(g.vendor) == g.backend]
    if not usable:
        return _Budget(ram, 0, "", False)
    # llama.cpp splits layers over every GPU of one backend; take the backend with the most memory.
    by_backend: dict[str, list[GPU]] = {}
    for gpu in usable:
        by_backend.setdefault(gpu.backend, []).append(gpu)
    best = max(by_backend.values(), key=lambda gs: sum(_gpu_memory(g, ram) for g in gs))
    if any(g.unified_memory for g in best):
        # One pool: what the GPU may use is also RAM; the limit is the smaller of the two.
        limit = sum(_gpu_memory(g, ram) for g in best)
        pool = min(limit, ram) if ram is not None else limit
        return _Budget(pool, pool, " + ".join(g.name for g in best), True)
    vram = sum(max(0, _gpu_memory(g, ram) - GPU_RESERVE) for g in best)
    return _Budget(ram, vram, " + ".join(g.name for g in best), False)


def _gpu_memory(gpu: GPU, ram: int | None) -> int:
    if gpu.free_vram_bytes is not None:
        return gpu.free_vram_bytes
    if gpu.total_vram_bytes is not None:
        return int(gpu.total_vram_bytes * 0.9)
    return (ram or 0) if gpu.unified_memory else 0


def fit_model(
    arch: Architecture,
    weights_bytes: int,
    hw: Hardware,
    *,
    n_ctx: int | None = None,
    max_ctx: int = 32768,
    kv_bytes_per_element: int = 2,
    vocab_size: int | None = None,
    logits_all: bool = False,
) -> Fit:
    """The largest context (and GPU layers) that fit; see the module docstring for the memory model."""
    budget = _budget(hw)
    layers = arch.block_count + 1  # llama.cpp counts the output layer as one more offloadable layer
    vocab = vocab_size or getattr(arch, "vocab_size", None) or DEFAULT_VOCAB

    def estimate(ctx: int, gpu_layers: int) -> dict:
        kv = kv_cache_bytes(arch, ctx, kv_bytes_per_element)
        on_gpu = gpu_layers > 0
        compute = compute_bytes(arch, ctx, on_gpu=on_gpu, vocab_size=vocab)
        extra = (ctx + N_UBATCH) * vocab * 4 if logits_all else 0
        subtotal = weights_bytes + kv + compute + RUNTIME_OVERHEAD + extra
        margin = int(subtotal * MARGIN)
        share = gpu_layers / layers
        gpu = int((weights_bytes + kv) * share + compute) if on_gpu else 0
        if on_gpu:
            gpu += int(gpu * MARGIN)
        return {"kv": kv, "compute": compute + extra, "total": subtotal + margin, "margin": margin, "gpu": gpu}

    def make(ctx: int, gpu_layers: int, fits: bool, reason: str, device: str) -> Fit:
        e = estimate(ctx, gpu_layers)
        available = budget.ram if device in ("cpu", "unified") else (budget.vram if device == "gpu" else budget.ram)
        return Fit(
            fits=fits, n_ctx=ctx, n_gpu_layers=gpu_layers, max_tokens=max_tokens_for(ctx),
            weights_bytes=weights_bytes, kv_cache_bytes=e["kv"], compute_bytes=e["compute"],
            total_bytes=e["total"], available_bytes=available, reason=reason,
            overhead_bytes=RUNTIME_OVERHEAD, margin_bytes=e["margin"], gpu_bytes=e["gpu"], device=device,
        )

    contexts = _contexts(arch, n_ctx, max_ctx)
    last_resort = [c for c in LAST_RESORT_CONTEXTS if c < min(contexts)] if n_ctx is None else []
    ram = budget.ram

    if budget.unified and budget.vram > 0:
        for ctx in contexts + last_resort:
            e = estimate(ctx, layers)
            if e["total"] <= budget.vram:
                note = "" if ctx >= MIN_CONTEXT or ctx == contexts[-1] else f", only with a {ctx}-token context"
                return make(ctx, layers, True, f"fits in unified memory on {budget.gpu_name}: needs {_gb(e['total'])}, "
                            f"{_gb(budget.vram)} usable{note}", "unified")
        ctx = contexts[-1]
        e = estimate(ctx, layers)
        return make(ctx, layers, False, f"needs {_gb(e['total'])}, {_gb(budget.vram)} usable", "unified")

    if budget.vram > 0:
        # All layers on the GPU at the largest context that allows it: context shrinks before layers do.
        for ctx in contexts:
            e = estimate(ctx, layers)
            if e["gpu"] <= budget.vram and (ram is None or e["total"] - e["gpu"] <= ram):
                return make(ctx, layers, True, f"fits on {budget.gpu_name}: needs {_gb(e['gpu'])} of "
                            f"{_gb(budget.vram)} free GPU memory, all {layers} layers", "gpu")
        # Then as many layers as fit at the smallest standard context; the rest stays in RAM.
        ctx = contexts[-1]
        for gpu_layers in range(layers - 1, 0, -1):
            e = estimate(ctx, gpu_layers)
            if e["gpu"] <= budget.vram:
                if ram is None or e["total"] - e["gpu"] <= ram:
                    return make(ctx, gpu_layers, True, f"partly on {budget.gpu_name}: {gpu_layers} of {layers} layers "
                                f"({_gb(e['gpu'])} of {_gb(budget.vram)} GPU memory), the rest in RAM", "partial")
                break

    for ctx in contexts + last_resort:
        e = estimate(ctx, 0)
        if ram is None or e["total"] <= ram:
            if ram is None:
                reason = f"needs {_gb(e['total'])}; free RAM is unknown"
            else:
                reason = f"fits in RAM: needs {_gb(e['total'])}, {_gb(ram)} free"
            if ctx < MIN_CONTEXT and ctx < contexts[-1]:
                reason += f", only with a {ctx}-token context"
            return make(ctx, 0, True, reason, "cpu")
    ctx = contexts[-1]
    e = estimate(ctx, 0)
    where = f"{_gb(ram)} free RAM" + (f" and {_gb(budget.vram)} GPU memory" if budget.vram else "")
    return make(ctx, 0, False, f"needs {_gb(e['total'])}, {where}", "cpu")


def fit_entry(entry: CatalogEntry, hw: Hardware, **kw) -> Fit:
    return fit_model(entry.architecture, entry.size_bytes, hw, **kw)


def fit_file(path: Path, hw: Hardware, entry: CatalogEntry | None = None, **kw) -> Fit:
    """Fit a model on disk: its GGUF header wins over the catalog entry. Raises OiLocalError for a bad file."""
    from oi_local.models.gguf_info import read

    info = read(Path(path))
    kw.setdefault("vocab_size", info.vocab_size or (getattr(entry.architecture, "vocab_size", None) if entry else None))
    return fit_model(info.to_architecture(), info.weights_bytes or info.size_bytes, hw, **kw)


def rank(entries: list[CatalogEntry], hw: Hardware) -> list[tuple[CatalogEntry, Fit]]:
    """Every entry with its fit: fitting ones first (recommended first, then larger models, which are
    better when they fit), then those that do not fit, smallest first, each with its reason."""
    fitted = [(entry, fit_entry(entry, hw)) for entry in entries]

    def key(pair: tuple[CatalogEntry, Fit]):
        entry, fit = pair
        if fit.fits:
            return (0, not entry.recommended, -entry.size_bytes, entry.id)
        return (1, False, entry.size_bytes, entry.id)

    return sorted(fitted, key=key)
