"""Will a model fit this machine, with which context window and GPU layers, and how fast will it decode.

What llama.cpp allocates where is models/memory.py (read off llama.cpp's own log lines). Here:

- CPU only: resident memory at its worst, with the context full: weights + KV cache + the compute scratch
  llama.cpp touches (the attention scores, n_ubatch x n_ctx x (heads + 1) x 4 bytes, their f16 copy for
  the value product, n_ubatch x n_ctx x heads x 2, and the activations, 6 x n_ubatch x embedding x 4; the
  logits part of its reserved buffer is never touched on a CPU) + the server process itself (80 MiB) + 5 %.
  Calibrated against the peak resident memory of a real server with a full window (bench/bench_fit.py).
- GPU: llama.cpp's GPU buffers (memory.allocate) + the driver's own context per GPU (CUDA: 516 MiB,
  measured on an H200: nvidia-smi's used memory less llama.cpp's buffers, the same at n_ctx 2048 and
  8192) + 2 % of the buffers for what the estimate misses, under the free GPU memory. The host keeps the
  token-embedding table, the layers left in RAM and their KV cache, plus the server process (and the GPU
  runtime's host memory, GPU_HOST_RUNTIME), with the 5 % margin: that must fit in RAM.
- Unified memory (Apple Silicon, GB10): one pool, the RAM less the system's share (RAM_RESERVE); the GPU
  part must also stay under what the GPU may wire (Metal: about three quarters of RAM).

The choice: the largest context up to the trained one (capped at 32768) with every layer on the GPU, down
to the agent's minimum context (8192, or the trained context when that is smaller); a code agent needs
context more than the last layers on the GPU, so then, at that minimum, as many layers as fit on the GPU
with the rest in RAM; only when even that fails, a smaller context. Flash attention is on where nothing
is offloaded (on the CPU it decoded 6-27 % faster, bench/RESULTS.md "decode speed") and off on a GPU (the
CUDA build of scripts/install.sh has no FlashAttention kernels); a q8_0 KV cache is off (on the CPU it was
within the noise of f16). When a caller passes them, the estimate follows. This assumes logits_all off (llama-cpp-python's server defaults it on, which adds
n_ctx x vocabulary x 4 bytes); pass logits_all=True to estimate that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from oi_local.files import format_bytes
from oi_local.machine import speed
from oi_local.machine.hardware import GPU, Hardware
from oi_local.models import memory
from oi_local.models.catalog import Architecture, CatalogEntry
from oi_local.models.memory import Layout

MIB = 1024 * 1024
GB = 1000**3
N_UBATCH = memory.N_UBATCH
RUNTIME_OVERHEAD = 80 * MIB  # llama_cpp.server process without model: measured (bench/bench_fit.py)
GPU_HOST_RUNTIME = 400 * MIB  # the CUDA/ROCm runtime's own host memory in the server (not measured here)
MARGIN = 0.05  # of the host part
GPU_CONTEXT = {"cuda": 516 * MIB, "rocm": 516 * MIB, "metal": 0}  # per GPU; ROCm's taken as CUDA's
GPU_SHARE = 0.02  # of llama.cpp's GPU buffers: what the estimate misses
RAM_RESERVE = GB // 2  # RAM left to the system and the user's programs (at most 5 % of RAM)
STANDARD_CONTEXTS = (32768, 16384, 8192, 4096, 2048)
AGENT_MIN_CONTEXT = 8192  # the code agent's minimum window (the model's trained context when smaller)
LAST_RESORT_CONTEXTS = (1024,)  # below the standard ones only when nothing else fits
DEFAULT_VOCAB = 65536  # when neither catalog nor header says
OFFLOAD_VENDORS = {"nvidia": "cuda", "amd": "rocm", "apple": "metal"}
KV_DECODE_TOKENS = 1024  # the KV cache a decode reads, for the speed estimate (a short conversation)


@dataclass(frozen=True)
class Fit:
    fits: bool
    n_ctx: int
    n_gpu_layers: int  # 0 on CPU; -1 never: the exact count
    max_tokens: int  # always < n_ctx
    weights_bytes: int
    kv_cache_bytes: int
    compute_bytes: int
    total_bytes: int  # all of it (host and GPU), margins included
    available_bytes: int | None  # what the estimate was compared against
    reason: str  # one line, e.g. "needs 6.1 GB, 4.2 GB free"
    overhead_bytes: int = 0  # the server process itself (and the GPU driver's context)
    margin_bytes: int = 0
    gpu_bytes: int = 0  # the part placed in GPU memory, driver context and share included
    device: str = "cpu"  # "cpu" | "gpu" | "partial" | "unified"
    host_bytes: int = 0  # the part in RAM
    flash_attn: bool = False  # what the server is to be started with; the estimate follows it
    kv_type: str = "f16"
    tokens_per_second: float | None = None  # estimated decode speed here (None: not estimated)
    note: str = ""  # a line the user should see besides the reason (e.g. a GPU the build cannot use)

    @property
    def fast_enough(self) -> bool:
        """Not known to be slow: estimated at SLOW_TOKENS_PER_SECOND or more, or not estimated."""
        return not speed.is_slow(self.tokens_per_second)

    @property
    def speed_label(self) -> str:
        """"~12 tok/s" or "~2 tok/s, slow here" ("" when not estimated), for menus and lists."""
        return speed.speed_label(self.tokens_per_second)

    @property
    def speed_suffix(self) -> str:
        """", ~12 tok/s" (or "" when not estimated): the speed label to append to a menu line or a reason."""
        label = self.speed_label
        return f", {label}" if label else ""


def max_tokens_for(n_ctx: int) -> int:
    """A quarter of the window for the reply, between 256 and 4096 tokens, always below n_ctx."""
    return max(1, min(n_ctx - 1, max(256, min(4096, n_ctx // 4))))


def kv_cache_bytes(arch: Architecture, n_ctx: int, kv_bytes_per_element: float = 2) -> int:
    return int(2 * arch.block_count * n_ctx * arch.kv_heads * arch.head_dim * kv_bytes_per_element)


def compute_bytes(arch: Architecture, n_ctx: int, *, vocab_size: int | None = None, n_ff: int | None = None,
                  flash_attn: bool = False) -> int:
    """The compute scratch a CPU run touches (module docstring). With flash attention the attention scores are
    never stored whole: the activations and the mask, n_ubatch x n_ctx x 4 (the peak resident memory of the
    test model's server with a full window was 17-25 MiB over its resident memory after loading, n_ctx
    1024-8192)."""
    ubatch = min(N_UBATCH, n_ctx)
    activations = 6 * ubatch * memory.embedding(arch) * 4
    if flash_attn:
        return activations + ubatch * n_ctx * 4
    heads = memory.head_count(arch)
    return ubatch * n_ctx * (heads + 1) * 4 + activations + ubatch * n_ctx * heads * 2


@dataclass(frozen=True)
class _Budget:
    ram: int | None  # usable RAM for the model
    vram: int  # usable GPU memory (0 when no offload)
    gpus: tuple[GPU, ...]
    unified: bool

    @property
    def gpu_name(self) -> str:
        return " + ".join(g.name for g in self.gpus)

    @property
    def context(self) -> int:
        return sum(GPU_CONTEXT.get(g.backend, GPU_CONTEXT["cuda"]) for g in self.gpus)


def _budget(hw: Hardware, use_gpu: bool) -> _Budget:
    ram = hw.available_ram_bytes
    if ram is None and hw.total_ram_bytes is not None:
        ram = hw.total_ram_bytes // 2
    if ram is not None and hw.total_ram_bytes:
        ram -= min(RAM_RESERVE, hw.total_ram_bytes // 20)  # leave the OS and the user's programs some room
    usable = [g for g in hw.gpus if OFFLOAD_VENDORS.get(g.vendor) == g.backend] if use_gpu else []
    if not usable:
        return _Budget(ram, 0, (), False)
    # llama.cpp splits layers over every GPU of one backend; take the backend with the most memory.
    by_backend: dict[str, list[GPU]] = {}
    for gpu in usable:
        by_backend.setdefault(gpu.backend, []).append(gpu)
    best = max(by_backend.values(), key=lambda gs: sum(_gpu_memory(g, ram) for g in gs))
    if any(g.unified_memory for g in best):
        limit = sum(_gpu_memory(g, ram) for g in best)
        return _Budget(ram, min(limit, ram) if ram is not None else limit, tuple(best), True)
    return _Budget(ram, sum(_gpu_memory(g, ram) for g in best), tuple(best), False)


def _gpu_memory(gpu: GPU, ram: int | None) -> int:
    if gpu.free_vram_bytes is not None:
        return gpu.free_vram_bytes
    if gpu.total_vram_bytes is not None:
        return int(gpu.total_vram_bytes * 0.9)
    return (ram or 0) if gpu.unified_memory else 0


@dataclass(frozen=True)
class _Estimate:
    ctx: int
    layers_on_gpu: int
    host: int  # RAM needed, margin included
    gpu: int  # GPU memory needed, driver context and share included
    margin: int
    overhead: int
    kv: int
    compute: int


def fit_model(
    arch: Architecture,
    weights_bytes: int,
    hw: Hardware,
    *,
    n_ctx: int | None = None,
    max_ctx: int = 32768,
    vocab_size: int | None = None,
    logits_all: bool = False,
    layout: Layout | None = None,
    n_ff: int | None = None,
    flash_attn: bool | None = None,
    kv_type: str = "f16",
    use_gpu: bool = True,
    bandwidth: speed.Bandwidth | None = None,
    note: str = "",
) -> Fit:
    """The largest context (and GPU layers) that fit; see the module docstring for the memory model.

    `layout` says where the weights sit (from the file's header; estimated from the catalog numbers when
    absent); `use_gpu` False keeps everything on the CPU (a build that cannot offload); `bandwidth` gives
    the decode speed estimate (machine/speed.py); `flash_attn` None: on when no GPU can take layers."""
    budget = _budget(hw, use_gpu)
    if flash_attn is None:
        flash_attn = not budget.gpus
    if kv_type != "f16" and not flash_attn:
        raise ValueError("llama.cpp quantizes the KV cache only with flash attention on")
    layers = arch.block_count + 1  # llama.cpp counts the output layer as one more offloadable layer
    vocab = vocab_size or getattr(arch, "vocab_size", None) or DEFAULT_VOCAB
    layout = layout or memory.estimate_layout(arch, weights_bytes)
    per_element = memory.KV_BYTES[kv_type]

    def estimate(ctx: int, gpu_layers: int) -> _Estimate:
        extra = (ctx + N_UBATCH) * vocab * 4 if logits_all else 0
        kv = kv_cache_bytes(arch, ctx, per_element)
        if gpu_layers == 0:
            compute = compute_bytes(arch, ctx, vocab_size=vocab, n_ff=n_ff, flash_attn=flash_attn) + extra
            subtotal = layout.total + kv + compute + RUNTIME_OVERHEAD
            margin = int(subtotal * MARGIN)
            return _Estimate(ctx, 0, subtotal + margin, 0, margin, RUNTIME_OVERHEAD, kv, compute)
        alloc = memory.allocate(arch, layout, ctx, gpu_layers, vocab=vocab, n_ff=n_ff, flash_attn=flash_attn,
                                kv_type=kv_type)
        runtime = RUNTIME_OVERHEAD + (0 if budget.unified else GPU_HOST_RUNTIME)
        host_sub = alloc.host + extra + runtime
        host_margin = int(host_sub * MARGIN)
        share = int(alloc.gpu * GPU_SHARE)
        context = budget.context
        gpu = alloc.gpu + share + context
        return _Estimate(ctx, gpu_layers, host_sub + host_margin, gpu, host_margin + share,
                         runtime + context, kv, alloc.gpu_compute + alloc.host_compute + extra)

    def rate(e: _Estimate) -> float | None:
        if bandwidth is None:
            return None
        host, gpu = memory.bytes_read_per_token(layout, arch.block_count, e.layers_on_gpu)
        on_gpu = min(e.layers_on_gpu, arch.block_count)
        kv_read = kv_cache_bytes(arch, min(e.ctx, KV_DECODE_TOKENS), per_element) // max(1, arch.block_count)
        return speed.tokens_per_second(host_bytes=host + kv_read * (arch.block_count - on_gpu),
                                       gpu_bytes=gpu + kv_read * on_gpu, host_layers=arch.block_count - on_gpu,
                                       gpu_layers=on_gpu, bandwidth=bandwidth)

    def make(e: _Estimate, fits: bool, reason: str, device: str) -> Fit:
        available = budget.vram if device in ("gpu", "unified") else budget.ram
        total = e.host + e.gpu
        return Fit(
            fits=fits, n_ctx=e.ctx, n_gpu_layers=e.layers_on_gpu, max_tokens=max_tokens_for(e.ctx),
            weights_bytes=weights_bytes, kv_cache_bytes=e.kv, compute_bytes=e.compute, total_bytes=total,
            available_bytes=available, reason=reason, overhead_bytes=e.overhead, margin_bytes=e.margin,
            gpu_bytes=e.gpu, device=device, host_bytes=e.host, flash_attn=flash_attn, kv_type=kv_type,
            tokens_per_second=rate(e), note=note,
        )

    ram = budget.ram

    def host_ok(e: _Estimate) -> bool:
        return ram is None or e.host <= ram

    contexts = _contexts(arch, n_ctx, max_ctx)
    floor = min(AGENT_MIN_CONTEXT, arch.context_length)
    preferred = [c for c in contexts if c >= floor] or contexts[:1] if n_ctx is None else contexts
    smaller = [c for c in contexts if c not in preferred]
    if n_ctx is None:
        smaller += [c for c in LAST_RESORT_CONTEXTS if c < min(contexts)]

    def short(ctx: int) -> str:
        return f", only with a {ctx}-token context" if ctx < floor and n_ctx is None else ""

    def on_gpus(ctxs: list[int]) -> Fit | None:
        pool = ram if ram is not None else budget.vram
        for ctx in ctxs:
            e = estimate(ctx, layers)
            if budget.unified and e.host + e.gpu <= pool and e.gpu <= budget.vram:
                return make(e, True, f"fits in unified memory on {budget.gpu_name}: needs {format_bytes(e.host + e.gpu)}, "
                            f"{format_bytes(pool)} usable{short(ctx)}", "unified")
            if not budget.unified and e.gpu <= budget.vram and host_ok(e):
                return make(e, True, f"fits on {budget.gpu_name}: needs {format_bytes(e.gpu)} of {format_bytes(budget.vram)} free "
                            f"GPU memory, all {layers} layers{short(ctx)}", "gpu")
        ctx = ctxs[-1]
        for gpu_layers in range(layers - 1, 0, -1):
            e = estimate(ctx, gpu_layers)
            if e.gpu <= budget.vram:
                if (e.host + e.gpu <= pool) if budget.unified else host_ok(e):
                    return make(e, True, f"partly on {budget.gpu_name}: {gpu_layers} of {layers} layers "
                                f"({format_bytes(e.gpu)} of {format_bytes(budget.vram)} GPU memory), the rest in RAM{short(ctx)}",
                                "partial")
                break
        return None

    def on_cpu(ctxs: list[int]) -> Fit | None:
        for ctx in ctxs:
            e = estimate(ctx, 0)
            if ram is None:
                return make(e, True, f"needs {format_bytes(e.host)}; free RAM is unknown{short(ctx)}", "cpu")
            if e.host <= ram:
                return make(e, True, f"fits in RAM: needs {format_bytes(e.host)}, {format_bytes(ram)} free{short(ctx)}", "cpu")
        return None

    for group in (preferred, smaller):
        if not group:
            continue
        found = (on_gpus(group) if budget.vram > 0 else None) or on_cpu(group)
        if found is not None:
            return found
    e = estimate(preferred[-1], 0)
    if budget.unified:
        e = estimate(preferred[-1], layers)
        pool = ram if ram is not None else budget.vram
        return make(e, False, f"needs {format_bytes(e.host + e.gpu)}, {format_bytes(pool)} usable", "unified")
    where = f"{format_bytes(ram)} free RAM" if ram is not None else "free RAM unknown"
    where += f" and {format_bytes(budget.vram)} GPU memory" if budget.vram else ""
    return make(e, False, f"needs {format_bytes(e.host)}, {where}", "cpu")


def _contexts(arch: Architecture, n_ctx: int | None, max_ctx: int) -> list[int]:
    if n_ctx is not None:
        return [n_ctx]
    trained = arch.context_length
    cap = min(trained, max_ctx)
    options = sorted({c for c in (trained, *STANDARD_CONTEXTS) if c <= cap}, reverse=True)
    return options or [cap]


def _engine(fmt: str, hw: Hardware) -> dict:
    """A GGUF runs on the installed llama-cpp-python: its GPUs only if that build can offload. A llamafile
    brings its own GPU support."""
    if fmt == "gguf" and hw.llama_cpp_gpu is False:
        from oi_local.machine.summary import gpu_build_note

        return {"use_gpu": False, "note": gpu_build_note(hw) or ""}
    return {}


def fit_entry(entry: CatalogEntry, hw: Hardware, **kw) -> Fit:
    for key, value in _engine(entry.format, hw).items():
        kw.setdefault(key, value)
    return fit_model(entry.architecture, entry.size_bytes, hw, **kw)


def fit_file(path: Path, hw: Hardware, entry: CatalogEntry | None = None, **kw) -> Fit:
    """Fit a model on disk: its GGUF header wins over the catalog entry. Raises OiLocalError for a bad file."""
    from oi_local.models.gguf_info import read

    path = Path(path)
    info = read(path)
    kw.setdefault("vocab_size", info.vocab_size or (getattr(entry.architecture, "vocab_size", None) if entry else None))
    kw.setdefault("layout", memory.layout_from_header(info))
    kw.setdefault("n_ff", info.feed_forward_length)
    for key, value in _engine("llamafile" if path.suffix == ".llamafile" else "gguf", hw).items():
        kw.setdefault(key, value)
    return fit_model(info.to_architecture(), info.weights_bytes or info.size_bytes, hw, **kw)


def machine_bandwidth(hw: Hardware, state_dir: Path | None = None) -> speed.Bandwidth:
    """This machine's memory bandwidths for the speed estimate (the host's measured once and cached in the
    state folder)."""
    if state_dir is None:
        from oi_local.machine.paths import app_paths

        state_dir = app_paths().state
    return speed.for_machine(hw, state_dir)


def rank(entries: list[CatalogEntry], hw: Hardware, *, bandwidth: speed.Bandwidth | None = None,
         state_dir: Path | None = None) -> list[tuple[CatalogEntry, Fit]]:
    """Every entry with its fit and speed here, best first: recommended models that fit and are fast enough
    (larger first: better when they fit and run), other fitting fast ones, fitting ones that are slow here
    (faster first), then those that do not fit (smallest first), each with its reason.

    The entries come back with `recommended` true only where it holds on this machine: the catalog's mark,
    and the model fits, and it is not slow here (under speed.SLOW_TOKENS_PER_SECOND). Where none of the
    catalog's recommended models is fast enough, the best one that is (a coder first, then the largest) is
    recommended instead."""
    from dataclasses import replace

    bandwidth = bandwidth or machine_bandwidth(hw, state_dir)
    fitted = [(entry, fit_entry(entry, hw, bandwidth=bandwidth)) for entry in entries]
    usable = [(e, f) for e, f in fitted if f.fits and f.fast_enough]
    chosen = {e.id for e, _ in usable if e.recommended}
    if not chosen and usable:
        best = max(usable, key=lambda pair: ("code" in pair[0].capabilities, pair[0].size_bytes))[0]
        chosen = {best.id}
    fitted = [(replace(e, recommended=e.id in chosen) if (e.id in chosen) != e.recommended else e, f)
              for e, f in fitted]

    def key(pair: tuple[CatalogEntry, Fit]):
        entry, fit = pair
        if fit.fits and fit.fast_enough:
            return (0, not entry.recommended, -entry.size_bytes, entry.id)
        if fit.fits:
            return (1, False, -(fit.tokens_per_second or 0), entry.id)
        return (2, False, entry.size_bytes, entry.id)

    return sorted(fitted, key=key)
