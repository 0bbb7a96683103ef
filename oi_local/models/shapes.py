"""Llama-architecture GGUF files of a real model's shape, written with gguf-py's GGUFWriter.

A file of a real shape holds exactly the tensors (names, dimensions, types) llama.cpp expects of such a
model, a small SentencePiece vocabulary padded to the shape's vocabulary size, and a ChatML template:
llama.cpp loads it as it loads the real model. Two kinds:

- random weights: every tensor filled with valid data (random values, repeated in blocks): llama.cpp runs
  it at the real model's speed, which is what memory and speed checks need;
- sparse: the header and tensor table, the data a hole in the file (no disk used): for the header-only fit
  of models far larger than this machine, and for llama.cpp's own buffer sizes (it maps the file and
  reserves its buffers without reading the weights).

Used by tests, bench/ and bench/gpu_check.py to check the memory fit and the speed estimate on realistic
shapes without downloading a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
_CHUNK = 1 << 22  # bytes of random pattern written at a time


@dataclass(frozen=True)
class Shape:
    """The numbers that decide a llama model's tensors."""

    name: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    n_ff: int
    n_vocab: int
    n_ctx_train: int = 131072
    tied_embeddings: bool = False  # True: no output.weight; llama.cpp reuses token_embd for the output

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


# The shapes the issue measured on an H200, and small ones that run on a CPU here.
LLAMA_1_5B = Shape("llama-1.5b", n_layer=16, n_embd=2048, n_head=32, n_head_kv=8, n_ff=8192, n_vocab=128256)
LLAMA_8B = Shape("llama-8b", n_layer=32, n_embd=4096, n_head=32, n_head_kv=8, n_ff=14336, n_vocab=128256)
LLAMA_70B = Shape("llama-70b", n_layer=80, n_embd=8192, n_head=64, n_head_kv=8, n_ff=28672, n_vocab=128256)
TINY = Shape("tiny", n_layer=4, n_embd=256, n_head=4, n_head_kv=2, n_ff=768, n_vocab=2048, n_ctx_train=4096)
SMALL = Shape("small", n_layer=12, n_embd=768, n_head=12, n_head_kv=4, n_ff=2048, n_vocab=32000, n_ctx_train=8192)
SHAPES = {s.name: s for s in (LLAMA_1_5B, LLAMA_8B, LLAMA_70B, TINY, SMALL)}

# GGUF general.file_type for the types written here (gguf.LlamaFileType)
_FILE_TYPES = {"F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7}


def tensors(shape: Shape) -> list[tuple[str, tuple[int, ...], bool]]:
    """(name, numpy-order dimensions, is a weight matrix) for every tensor llama.cpp loads for this shape."""
    e, hd = shape.n_embd, shape.head_dim
    out: list[tuple[str, tuple[int, ...], bool]] = [("token_embd.weight", (shape.n_vocab, e), True)]
    for i in range(shape.n_layer):
        b = f"blk.{i}."
        out += [
            (b + "attn_norm.weight", (e,), False),
            (b + "attn_q.weight", (shape.n_head * hd, e), True),
            (b + "attn_k.weight", (shape.n_head_kv * hd, e), True),
            (b + "attn_v.weight", (shape.n_head_kv * hd, e), True),
            (b + "attn_output.weight", (e, shape.n_head * hd), True),
            (b + "ffn_norm.weight", (e,), False),
            (b + "ffn_gate.weight", (shape.n_ff, e), True),
            (b + "ffn_up.weight", (shape.n_ff, e), True),
            (b + "ffn_down.weight", (e, shape.n_ff), True),
        ]
    out.append(("output_norm.weight", (e,), False))
    if not shape.tied_embeddings:
        out.append(("output.weight", (shape.n_vocab, e), True))
    return out


def _vocabulary(n_vocab: int) -> tuple[list[str], list[float], list[int]]:
    """A SentencePiece vocabulary: specials, ChatML markers, the 256 byte tokens, then plain pieces."""
    import gguf

    tt = gguf.TokenType
    tokens = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    types = [tt.UNKNOWN, tt.CONTROL, tt.CONTROL, tt.CONTROL, tt.CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [tt.BYTE] * 256
    words = ["▁" + c for c in "abcdefghijklmnopqrstuvwxyz"] + list("abcdefghijklmnopqrstuvwxyz0123456789")
    words += ["▁word", "▁the", "▁is", "▁print", "(", ")", ".", ",", ":", "▁="]
    while len(tokens) + len(words) < n_vocab:
        words.append(f"▁w{len(words)}")
    for word in words[: n_vocab - len(tokens)]:
        tokens.append(word)
        types.append(tt.NORMAL)
    scores = [0.0] * 5 + [0.0] * 256 + [-float(i) for i in range(len(tokens) - 261)]
    return tokens[:n_vocab], scores[:n_vocab], [int(t) for t in types[:n_vocab]]


def _pattern(qtype, rng) -> bytes:
    """A few MiB of valid tensor data of this type (random values scaled like trained weights)."""
    import gguf
    import numpy as np

    values = (rng.standard_normal(_CHUNK // 4, dtype=np.float32) * 0.02).astype(np.float32)
    if qtype == gguf.GGMLQuantizationType.F16:
        return values.astype(np.float16).tobytes()
    if qtype == gguf.GGMLQuantizationType.F32:
        return values.tobytes()
    return gguf.quants.quantize(values.reshape(-1, 1024), qtype).tobytes()


def write(path: Path, shape: Shape, weight_type: str = "F16", *, sparse: bool = False, seed: int = 0) -> Path:
    """Write `shape` as a GGUF file at `path` (matrices in `weight_type`: F16, Q8_0, Q4_0 or Q4_1)."""
    import gguf
    import numpy as np

    GT = gguf.GGMLQuantizationType
    qtype = GT[weight_type]
    path = Path(path)
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name(f"{shape.name} random {weight_type}")
    writer.add_block_count(shape.n_layer)
    writer.add_context_length(shape.n_ctx_train)
    writer.add_embedding_length(shape.n_embd)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_rope_dimension_count(shape.head_dim)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(500000.0)
    writer.add_vocab_size(shape.n_vocab)
    writer.add_file_type(_FILE_TYPES[weight_type])
    tokens, scores, types = _vocabulary(shape.n_vocab)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(4)  # <|im_end|> ends a ChatML turn
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHATML)
    layout = []
    for name, dims, matrix in tensors(shape):
        kind = qtype if matrix else GT.F32
        block, type_size = gguf.GGML_QUANT_SIZES[kind]
        elements = int(np.prod(dims))
        nbytes = elements // block * type_size
        writer.add_tensor_info(name, dims, np.float32, nbytes, raw_dtype=kind)
        layout.append((kind, nbytes, matrix))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    out = writer.fout[0]
    writer.write_padding(out, out.tell())
    alignment = writer.data_alignment
    if sparse:
        end = out.tell() + sum(gguf.GGUFWriter.ggml_pad(n, alignment) for _, n, _ in layout)
        out.truncate(end)
    else:
        rng = np.random.default_rng(seed)
        patterns = {kind: _pattern(kind, rng) for kind in {k for k, _, m in layout if m}}
        ones = np.ones(_CHUNK // 4, dtype=np.float32).tobytes()
        for kind, nbytes, matrix in layout:
            data = patterns[kind] if matrix else ones
            left = nbytes
            while left > 0:
                piece = data[: min(left, len(data))]
                out.write(piece)
                left -= len(piece)
            writer.write_padding(out, nbytes)
    writer.close()
    return path


# The shapes the issue measured on an H200, with the weight types it used: name -> (shape, type).
ISSUE_SHAPES = {"1.5b-f16": (LLAMA_1_5B, "F16"), "8b-q8_0": (LLAMA_8B, "Q8_0"), "70b-f16": (LLAMA_70B, "F16")}


def write_issue_shapes(folder: Path) -> dict[str, Path]:
    """The issue's three shapes as sparse files in `folder` (header and tensor table; no disk used for weights)."""
    return {name: write(Path(folder) / f"{name}.gguf", shape, kind, sparse=True)
            for name, (shape, kind) in ISSUE_SHAPES.items()}


def weights_bytes(shape: Shape, weight_type: str = "F16") -> int:
    """The tensor data of `shape` in `weight_type`, as llama.cpp loads it."""
    import gguf

    GT = gguf.GGMLQuantizationType
    total = 0
    for _, dims, matrix in tensors(shape):
        block, type_size = gguf.GGML_QUANT_SIZES[GT[weight_type] if matrix else GT.F32]
        n = 1
        for d in dims:
            n *= d
        total += n // block * type_size
    return total
