"""What llama.cpp allocates, and where, for a model at a context size with some layers on the GPU.

Read off llama.cpp's own log lines (`load_tensors: CUDA0 model buffer size = ...`, `llama_kv_cache: ... KV
buffer size = ...`, `sched_reserve: ... compute buffer size = ...`) for random-weight GGUF files of real
shapes (tests/test_memory.py, bench/bench_fit.py), and on an H200 for the shapes the issue measured:

- weights: the input layer (token_embd) always stays in host memory. With n_gpu_layers = k, the last k
  repeating layers go to the GPU, and the output layer (output_norm + output.weight) too when k is
  n_layer + 1 ("all layers"). A model without output.weight (tied embeddings) gets a copy of token_embd
  on the output layer's device.
- KV cache: each layer's keys and values where the layer is: 2 x n_ctx x kv_heads x head_dim x bytes per
  element (f16: 2; q8_0: 34 bytes per 32).
- compute: one buffer on the device that runs the graph (the GPU as soon as it holds any layer), as large
  as the largest of three moments of one micro-batch (n_ubatch = 512 tokens):
    attention without flash attention: the scores and the mask, n_ubatch x n_ctx x (heads x 4 + 4) bytes,
      plus the activations n_ubatch x (20 x embedding + 8 x kv width)
    the feed-forward block: n_ubatch x 4 x (3 x ffn width + 4 x embedding + n_ctx) + n_ubatch x 8 x kv width
    the logits: n_ubatch x 4 x (vocabulary + 2 x embedding)
  With flash attention the scores are never stored whole; the mask is f16 (2 bytes).
- partial offload: for a prompt batch llama.cpp runs the matrix products of host-resident layers on the
  GPU (op offload), copying their weights into the GPU's compute buffer: it grows by the largest host
  layer (or output matrix). Derived from llama.cpp's scheduler, not yet measured: bench/gpu_check.py does.

The GPU also needs the driver's own context (CUDA: 516 MiB measured on an H200 with CUDA 13, the same at
n_ctx 2048 and 8192), which is not a llama.cpp buffer; models/fit.py adds it with its margin.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from oi_local.models.catalog import Architecture

N_UBATCH = 512  # llama.cpp's default physical batch
KV_BYTES = {"f16": 2.0, "q8_0": 34 / 32}  # bytes per element of the KV cache


@dataclass(frozen=True)
class Layout:
    """A model's bytes as llama.cpp places them: the input layer, the repeating layers, the output layer."""

    total: int
    token_embd: int  # token_embd.weight: always in host memory
    output: int  # output.weight + output_norm.weight; with tied embeddings the copy of token_embd
    n_layer: int
    tied: bool = False

    @property
    def layers(self) -> int:
        """All repeating layers together."""
        return max(0, self.total - self.token_embd - (0 if self.tied else self.output))

    @property
    def per_layer(self) -> int:
        return self.layers // max(1, self.n_layer)


def layout_from_header(info) -> Layout:
    """From a GgufInfo (models/gguf_info.py): the tensor table says exactly where the bytes are."""
    total = info.weights_bytes or info.size_bytes
    if not info.token_embd_bytes:  # an architecture with other tensor names: treat it as one block
        return estimate_layout(info.to_architecture(), total)
    output = info.token_embd_bytes + info.output_bytes if info.tied_embeddings else info.output_bytes
    return Layout(total=total, token_embd=info.token_embd_bytes, output=output, n_layer=info.block_count,
                  tied=info.tied_embeddings)


def estimate_layout(arch: Architecture, weights_bytes: int) -> Layout:
    """Before a download (catalog numbers only): the embedding table's share of the parameters, at the file's
    average bytes per parameter, with a separate output matrix of the same size (most models above 3B)."""
    embd_params = (arch.vocab_size or 0) * (arch.embedding_length or 0)
    params = arch.parameters or 0
    if not embd_params or params <= 2 * embd_params:
        return Layout(total=weights_bytes, token_embd=0, output=0, n_layer=arch.block_count)
    share = int(weights_bytes * embd_params / params)
    return Layout(total=weights_bytes, token_embd=share, output=share, n_layer=arch.block_count)


@dataclass(frozen=True)
class Allocation:
    """What llama.cpp allocates, in bytes, on the GPU and in host memory (its buffers, nothing else)."""

    gpu_weights: int = 0
    gpu_kv: int = 0
    gpu_compute: int = 0
    host_weights: int = 0
    host_kv: int = 0
    host_compute: int = 0

    @property
    def gpu(self) -> int:
        return self.gpu_weights + self.gpu_kv + self.gpu_compute

    @property
    def host(self) -> int:
        return self.host_weights + self.host_kv + self.host_compute


def head_count(arch: Architecture) -> int:
    if arch.head_count:
        return arch.head_count
    if arch.embedding_length and arch.head_dim:
        return max(arch.kv_heads, arch.embedding_length // arch.head_dim)
    return arch.kv_heads


def embedding(arch: Architecture) -> int:
    return arch.embedding_length or head_count(arch) * arch.head_dim


def kv_cache_bytes(arch: Architecture, n_ctx: int, kv_type: str = "f16", layers: int | None = None) -> int:
    per_element = KV_BYTES[kv_type]
    n = arch.block_count if layers is None else layers
    return int(2 * n * n_ctx * arch.kv_heads * arch.head_dim * per_element)


def ffn_width(arch: Architecture, layout: Layout | None, n_ff: int | None) -> int:
    """The feed-forward width: from the header, else from the layer's bytes (3 x embedding x width of its
    parameters), else 3.5 x embedding."""
    if n_ff:
        return n_ff
    e = embedding(arch)
    if layout is not None and arch.parameters and layout.total:
        per_layer_params = layout.per_layer * arch.parameters / layout.total
        attention = 2 * e * e + 2 * e * arch.kv_heads * arch.head_dim
        if per_layer_params > attention:
            return int((per_layer_params - attention) / (3 * e))
    return int(3.5 * e)


def compute_buffer(arch: Architecture, n_ctx: int, *, vocab: int, n_ff: int, flash_attn: bool = False,
                   n_ubatch: int = N_UBATCH) -> int:
    """llama.cpp's reserved compute buffer for one micro-batch at this context (see the module docstring)."""
    ub = min(n_ubatch, n_ctx)
    e = embedding(arch)
    kv_width = arch.kv_heads * arch.head_dim
    mask = 2 if flash_attn else 4
    scores = 0 if flash_attn else head_count(arch) * 4
    attention = ub * n_ctx * (scores + mask) + ub * (20 * e + 8 * kv_width)
    ffn = ub * 4 * (3 * n_ff + 4 * e) + ub * n_ctx * mask + ub * 8 * kv_width
    logits = ub * 4 * (vocab + 2 * e)
    return max(attention, ffn, logits)


def allocate(arch: Architecture, layout: Layout, n_ctx: int, n_gpu_layers: int, *, vocab: int,
             n_ff: int | None = None, flash_attn: bool = False, kv_type: str = "f16") -> Allocation:
    """llama.cpp's buffers for this placement: n_gpu_layers counts the output layer as one more."""
    n_layer = arch.block_count
    gpu_layers = max(0, min(n_gpu_layers, n_layer + 1))
    repeating_on_gpu = min(gpu_layers, n_layer)
    output_on_gpu = gpu_layers == n_layer + 1
    width = ffn_width(arch, layout, n_ff)
    compute = compute_buffer(arch, n_ctx, vocab=vocab, n_ff=width, flash_attn=flash_attn)
    kv_gpu = kv_cache_bytes(arch, n_ctx, kv_type, repeating_on_gpu)
    kv_host = kv_cache_bytes(arch, n_ctx, kv_type, n_layer - repeating_on_gpu)
    layer_bytes = layout.per_layer
    gpu_weights = repeating_on_gpu * layer_bytes + (layout.output if output_on_gpu else 0)
    host_weights = layout.total - gpu_weights
    if output_on_gpu and layout.tied:  # the copy of token_embd is extra; the host keeps the original
        host_weights = layout.total - repeating_on_gpu * layer_bytes
    if gpu_layers == 0:
        return Allocation(host_weights=layout.total, host_kv=kv_host, host_compute=compute)
    copies = 0
    if not output_on_gpu:  # op offload: the largest host matrix is copied to the GPU for a prompt batch
        copies = max(layout.output, layer_bytes if repeating_on_gpu < n_layer else 0)
    host_compute = min(compute, ub_host_bytes(arch, n_ctx, vocab))
    return Allocation(gpu_weights=gpu_weights, gpu_kv=kv_gpu, gpu_compute=compute + copies,
                      host_weights=host_weights, host_kv=kv_host, host_compute=host_compute)


def bytes_read_per_token(layout: Layout, n_layer: int, n_gpu_layers: int) -> tuple[int, int]:
    """(host, GPU) weight bytes one decoded token reads: every layer where it sits, the output matrix (with tied
    embeddings: the embedding table) where the output layer is; of the input table only one row."""
    gpu_layers = max(0, min(n_gpu_layers, n_layer + 1))
    repeating_on_gpu = min(gpu_layers, n_layer)
    output_on_gpu = gpu_layers == n_layer + 1
    gpu = repeating_on_gpu * layout.per_layer + (layout.output if output_on_gpu else 0)
    host = (n_layer - repeating_on_gpu) * layout.per_layer + (0 if output_on_gpu else layout.output)
    return host, gpu


def ub_host_bytes(arch: Architecture, n_ctx: int, vocab: int) -> int:
    """The host side of a GPU run's compute (inputs, the embeddings of a micro-batch, the logits read back)."""
    ub = min(N_UBATCH, n_ctx)
    return ub * 4 * (embedding(arch) + vocab // 8)


# --- llama.cpp's log ------------------------------------------------------------------------------------

_BUFFER_LINE = re.compile(r"\b([A-Za-z_]+[0-9]*)\s+(model|KV|compute|output) buffer size\s*=\s*([0-9.]+) MiB")


def parse_log(text: str) -> dict[tuple[str, str], int]:
    """{(device, kind): bytes} from llama.cpp's log: device "CPU", "CPU_Mapped", "CUDA0", "CUDA_Host",
    "Metal", "ROCm0", ...; kind "model", "KV", "compute", "output". Repeated lines (a context created
    twice) keep the last value; the summary lines llama.cpp prints at exit are skipped."""
    found: dict[tuple[str, str], int] = {}
    for line in text.splitlines():
        if "matches expectation" in line or "~llama_context" in line:
            continue
        match = _BUFFER_LINE.search(line)
        if match:
            found[(match.group(1), match.group(2))] = int(float(match.group(3)) * 1024 * 1024)
    return found


def gpu_bytes_in_log(found: dict[tuple[str, str], int]) -> int:
    """What a log says llama.cpp allocated on GPUs: every device but the host's (CPU*, *_Host)."""
    return sum(n for (device, kind), n in found.items()
               if kind != "output" and not device.startswith("CPU") and not device.endswith("_Host"))


def host_bytes_in_log(found: dict[tuple[str, str], int]) -> int:
    return sum(n for (device, kind), n in found.items()
               if kind != "output" and (device.startswith("CPU") or device.endswith("_Host")))
