"""What a GGUF file (or the GGUF inside a llamafile) says about its model: the header, nothing more.

The `gguf` package defines the format (magic, value types, tensor type sizes); its GGUFReader builds a
numpy view of every value, tokenizer arrays included, which takes seconds for a 150k-token vocabulary.
We only need a dozen scalars and the tensor table, so we walk the header once with the package's
constants and skip the big arrays by their lengths (tests check the result against GGUFReader).
"""

from __future__ import annotations

import mmap
import struct
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

from oi_local.errors import OiLocalError
from oi_local.models.catalog import Architecture

# Numeric arrays up to this length are kept (per-layer head counts); longer ones (vocabularies) skipped.
_SMALL_ARRAY = 4096


@dataclass(frozen=True)
class GgufInfo:
    path: Path
    architecture: str  # GGUF general.architecture, e.g. "llama", "qwen2", "gemma2"
    name: str | None
    block_count: int
    kv_heads: int
    head_count: int
    embedding_length: int
    head_dim: int  # attention.key_length where given, else embedding_length / head_count
    context_length: int  # trained context
    chat_template: str | None
    file_type: str | None  # e.g. "Q4_1", "Q4_K_M"
    size_bytes: int  # the file on disk
    parameters: int  # sum of the tensors' elements
    weights_bytes: int = 0  # the tensor data llama.cpp loads
    value_dim: int | None = None  # attention.value_length where it differs from head_dim
    gguf_offset: int = 0  # where the GGUF starts: 0, or inside a llamafile
    vocab_size: int | None = None
    # where the tensor bytes sit, as llama.cpp places them (models/memory.py)
    token_embd_bytes: int = 0  # token_embd.weight: always kept in host memory
    output_bytes: int = 0  # output.weight + output_norm.weight (0 for output.weight when tied to token_embd)
    tied_embeddings: bool = False  # no output.weight: llama.cpp copies token_embd to the output layer's device
    feed_forward_length: int | None = None

    def to_architecture(self) -> Architecture:
        return Architecture(
            block_count=self.block_count,
            kv_heads=self.kv_heads,
            head_dim=self.head_dim,
            context_length=self.context_length,
            embedding_length=self.embedding_length,
            head_count=self.head_count,
            parameters=self.parameters,
            vocab_size=self.vocab_size,
        )


class _Truncated(Exception):
    pass


class _Header:
    """A cursor over the mapped file."""

    def __init__(self, data: mmap.mmap | bytes, start: int) -> None:
        self.data = data
        self.pos = start

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise _Truncated
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values[0] if len(values) == 1 else values

    def string(self) -> str:
        length = self.take("<Q")
        if self.pos + length > len(self.data):
            raise _Truncated
        raw = self.data[self.pos:self.pos + length]
        self.pos += length
        return bytes(raw).decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        length = self.take("<Q")
        self.pos += length
        if self.pos > len(self.data):
            raise _Truncated


def read(path: Path) -> GgufInfo:
    """Read the header of a .gguf file or of the GGUF inside a .llamafile. Raises OiLocalError."""
    path = Path(path)
    try:
        size = path.stat().st_size
        handle = open(path, "rb")
    except FileNotFoundError:
        raise OiLocalError(f"The model file {path} does not exist. Check the path, or download the model again.") from None
    except OSError as error:
        raise OiLocalError(f"The model file {path} cannot be read ({error.strerror or error}). Check its permissions.") from None
    with handle:
        if size == 0:
            raise OiLocalError(f"The model file {path} is empty, so it is not a GGUF model. Download it again.")
        data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            start = _gguf_start(path, data)
            try:
                return _parse(path, data, start, size)
            except _Truncated:
                raise OiLocalError(
                    f"The model file {path} is truncated: its GGUF header promises more data than the file holds "
                    f"({size} bytes). The download was probably interrupted; download it again."
                ) from None
        finally:
            data.close()


def _gguf_start(path: Path, data: mmap.mmap) -> int:
    import gguf

    magic = struct.pack("<I", gguf.GGUF_MAGIC)
    if data[:4] == magic:
        return 0
    # A llamafile is an executable that is also a zip; the weights are a stored (uncompressed) .gguf member.
    try:
        with zipfile.ZipFile(path) as archive:
            member = next((m for m in archive.infolist() if m.filename.endswith(".gguf")), None)
            if member is not None and member.compress_type == zipfile.ZIP_STORED:
                local = member.header_offset
                name_len, extra_len = struct.unpack_from("<HH", data, local + 26)
                start = local + 30 + name_len + extra_len
                if data[start:start + 4] == magic:
                    return start
    except (zipfile.BadZipFile, OSError, struct.error):
        pass
    raise OiLocalError(
        f"The file {path} is not a GGUF model (it does not start with the GGUF magic bytes"
        f"{' and holds no GGUF inside' if path.suffix == '.llamafile' else ''}). "
        "Choose a .gguf file (or a .llamafile with its weights inside)."
    )


def _parse(path: Path, data: mmap.mmap, start: int, file_size: int) -> GgufInfo:
    import gguf

    VT = gguf.GGUFValueType
    scalar = {
        VT.UINT8: "<B", VT.INT8: "<b", VT.UINT16: "<H", VT.INT16: "<h", VT.UINT32: "<I", VT.INT32: "<i",
        VT.FLOAT32: "<f", VT.BOOL: "<?", VT.UINT64: "<Q", VT.INT64: "<q", VT.FLOAT64: "<d",
    }
    h = _Header(data, start + 4)
    version = h.take("<I")
    if version not in (2, 3):
        raise OiLocalError(f"The model file {path} is GGUF version {version}, which is not supported (2 or 3 are). Use a newer conversion of the model.")
    tensor_count, kv_count = h.take("<QQ")
    if tensor_count > 1_000_000 or kv_count > 1_000_000:
        raise OiLocalError(f"The model file {path} has a corrupt GGUF header (absurd counts). Download it again.")
    meta: dict[str, object] = {}
    counts: dict[str, int] = {}  # lengths of the arrays, kept or skipped
    for _ in range(kv_count):
        key = h.string()
        kind = VT(h.take("<I"))
        if kind == VT.STRING:
            meta[key] = h.string()
        elif kind in scalar:
            meta[key] = h.take(scalar[kind])
        elif kind == VT.ARRAY:
            item = VT(h.take("<I"))
            count = h.take("<Q")
            counts[key] = count
            if item == VT.STRING:
                for _ in range(count):
                    h.skip_string()
            elif item in scalar:
                width = struct.calcsize(scalar[item])
                if count <= _SMALL_ARRAY:
                    meta[key] = list(struct.unpack_from(f"<{count}{scalar[item][1]}", data, h.pos)) if h.pos + count * width <= len(data) else None
                h.pos += count * width
                if h.pos > len(data):
                    raise _Truncated
            else:
                raise OiLocalError(f"The model file {path} has a GGUF array of arrays under {key}, which this reader does not handle.")
        else:
            raise OiLocalError(f"The model file {path} has an unknown GGUF value type {kind} under {key}.")

    parameters = 0
    weights = 0
    data_end = 0
    placed = {"token_embd.weight": 0, "output.weight": 0, "output_norm.weight": 0}
    has_output = False
    for _ in range(tensor_count):
        tensor_name = h.string()
        n_dims = h.take("<I")
        if n_dims > 8:
            raise OiLocalError(f"The model file {path} has a corrupt tensor table. Download it again.")
        dims = h.take(f"<{n_dims}Q") if n_dims else ()
        dims = (dims,) if isinstance(dims, int) else dims
        tensor_type = h.take("<I")
        offset = h.take("<Q")
        elements = 1
        for d in dims:
            elements *= d
        try:
            block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(tensor_type)]
        except (ValueError, KeyError):
            raise OiLocalError(f"The model file {path} uses tensor type {tensor_type}, unknown to this gguf package; update it (pip install -U gguf).") from None
        nbytes = elements * type_size // block
        parameters += elements
        weights += nbytes
        if tensor_name in placed:
            placed[tensor_name] += nbytes
            has_output = has_output or tensor_name == "output.weight"
        data_end = max(data_end, offset + nbytes)
    alignment = meta.get("general.alignment") or gguf.GGUF_DEFAULT_ALIGNMENT
    data_start = h.pos + (-(h.pos - start) % alignment)
    if data_start + data_end > len(data):
        raise _Truncated
    info = _info(path, meta, counts, file_size, parameters, weights, start)
    return replace(info, token_embd_bytes=placed["token_embd.weight"], tied_embeddings=not has_output,
                   output_bytes=placed["output.weight"] + placed["output_norm.weight"])


def _info(path: Path, meta: dict, counts: dict, file_size: int, parameters: int, weights: int, start: int) -> GgufInfo:
    import gguf

    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        raise OiLocalError(f"The model file {path} has no general.architecture in its GGUF header, so it is not a usable model.")

    def number(key: str, *, required: bool = True) -> int | None:
        value = meta.get(f"{arch}.{key}")
        if isinstance(value, list):  # per-layer values (some architectures vary heads by layer)
            value = max(value) if value else None
        if value is None:
            if required:
                raise OiLocalError(
                    f"The model file {path} lacks {arch}.{key} in its GGUF header, so it is not a language model "
                    "this program can serve (a projector or vocabulary file?). Choose the model's main .gguf."
                )
            return None
        return int(value)

    block_count = number("block_count")
    head_count = number("attention.head_count")
    embedding = number("embedding_length")
    kv_heads = number("attention.head_count_kv", required=False) or head_count
    key_length = number("attention.key_length", required=False)
    value_length = number("attention.value_length", required=False)
    head_dim = key_length or (embedding // head_count if head_count else 0)
    file_type = meta.get("general.file_type")
    try:
        quant = gguf.LlamaFileType(file_type).name.removeprefix("MOSTLY_") if file_type is not None else None
    except ValueError:
        quant = str(file_type)
    template = meta.get("tokenizer.chat_template")
    name = meta.get("general.name")
    return GgufInfo(
        path=path,
        architecture=arch,
        name=name if isinstance(name, str) else None,
        block_count=block_count,
        kv_heads=kv_heads,
        head_count=head_count,
        embedding_length=embedding,
        head_dim=head_dim,
        context_length=number("context_length"),
        chat_template=template if isinstance(template, str) else None,
        file_type=quant,
        size_bytes=file_size,
        parameters=parameters,
        weights_bytes=weights,
        value_dim=value_length if value_length and value_length != head_dim else None,
        gguf_offset=start,
        vocab_size=number("vocab_size", required=False) or counts.get("tokenizer.ggml.tokens"),
        feed_forward_length=number("feed_forward_length", required=False),
    )
