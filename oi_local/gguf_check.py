"""A fast integrity check of a GGUF file before a server is started on it.

gguf.GGUFReader maps every tensor (about 2 s for a 94 MB model here), too slow for the start path; this reads
only the header: magic, version, the metadata and tensor tables, and checks that the tensor data the header
promises fits in the file (a truncated download fails here, naming the file, instead of crashing the server).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from oi_local.errors import OiLocalError

GGUF_MAGIC = b"GGUF"
# metadata value types of the GGUF spec: id -> struct format of a scalar
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class GgufCheck:
    path: Path
    version: int
    tensor_count: int
    data_end: int  # bytes the tensor data needs, counted from the start of the file
    size_bytes: int
    chat_template: str | None
    architecture: str | None


class _Reader:
    """Reads the header from memory (one buffered read; the header of a big model is a few MB)."""

    def __init__(self, f, path: Path) -> None:
        self.f = f
        self.path = path
        self.buf = b""
        self.pos = 0

    def _need(self, n: int) -> None:
        if self.pos + n > len(self.buf):
            more = self.f.read(max(n, 4 << 20, len(self.buf)))
            self.buf = self.buf[self.pos:] + more
            self.pos = 0
            if n > len(self.buf):
                raise _Truncated

    def take(self, n: int) -> bytes:
        self._need(n)
        data = self.buf[self.pos:self.pos + n]
        self.pos += n
        return data

    def unpack(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        self._need(size)
        value = struct.unpack_from("<" + fmt, self.buf, self.pos)[0]
        self.pos += size
        return value

    def string(self) -> bytes:
        n = self.unpack("Q")
        if n > 1 << 30:
            raise _Garbled(f"a string of {n} bytes")
        return self.take(n)

    def skip(self, n: int) -> None:
        if n > 1 << 34:
            raise _Garbled(f"a field of {n} bytes")
        self._need(n)
        self.pos += n

    def _skip_strings(self, count: int) -> None:
        unpack_from = struct.unpack_from
        while count:
            buf, pos, end = self.buf, self.pos, len(self.buf)
            while count and pos + 8 <= end:
                n = unpack_from("<Q", buf, pos)[0]
                if pos + 8 + n > end:
                    break
                pos += 8 + n
                count -= 1
            self.pos = pos
            if count:
                self.skip(self.unpack("Q"))
                count -= 1

    def tell(self) -> int:
        return self.f.tell() - (len(self.buf) - self.pos)

    def value(self, vtype: int, keep: bool):
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string() if keep else self.skip(self.unpack("Q"))
        if vtype == _ARRAY:
            itype, count = self.unpack("I"), self.unpack("Q")
            if itype in _SCALARS:
                self.skip(struct.calcsize("<" + _SCALARS[itype]) * count)
            elif itype == _STRING:
                self._skip_strings(count)
            else:
                for _ in range(count):
                    self.value(itype, False)
            return None
        raise _Garbled(f"unknown metadata type {vtype}")


class _Truncated(Exception):
    pass


class _Garbled(Exception):
    pass


def _tensor_bytes(dims: list[int], ggml_type: int) -> int:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    block, size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    elements = 1
    for d in dims:
        elements *= d
    return elements // block * size


def check(path: Path) -> GgufCheck:
    """Raise OiLocalError naming the file when it is missing, not GGUF, or shorter than its header says."""
    path = Path(path)
    advice = "Download it again (oi-local models download ID) or pick another file."
    if not path.exists():
        raise OiLocalError(f"The model file {path} does not exist. {advice}")
    if not path.is_file():
        raise OiLocalError(f"The model path {path} is not a file. {advice}")
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            try:
                magic = f.read(4)
                r = _Reader(f, path)
                if magic != GGUF_MAGIC:
                    raise OiLocalError(f"The file {path} is not a GGUF model (it starts with {magic[:4]!r}, not "
                                       f"b'GGUF'). {advice}")
                version = r.unpack("I")
                if version not in (2, 3):
                    raise OiLocalError(f"The file {path} is GGUF version {version}, which this program cannot "
                                       "serve (versions 2 and 3 are supported). Update llama-cpp-python or use "
                                       "another file.")
                n_tensors, n_kv = r.unpack("Q"), r.unpack("Q")
                alignment, template, arch = 32, None, None
                for _ in range(n_kv):
                    key = r.string()
                    vtype = r.unpack("I")
                    keep = key in (b"tokenizer.chat_template", b"general.architecture")
                    value = r.value(vtype, keep or key == b"general.alignment")
                    if key == b"general.alignment" and isinstance(value, int) and value > 0:
                        alignment = value
                    elif key == b"tokenizer.chat_template" and isinstance(value, bytes):
                        template = value.decode("utf-8", errors="replace")
                    elif key == b"general.architecture" and isinstance(value, bytes):
                        arch = value.decode("utf-8", errors="replace")
                end = 0
                for _ in range(n_tensors):
                    r.string()
                    n_dims = r.unpack("I")
                    dims = [r.unpack("Q") for _ in range(n_dims)]
                    ggml_type, offset = r.unpack("I"), r.unpack("Q")
                    end = max(end, offset + _tensor_bytes(dims, ggml_type))
                header_end = r.tell()
                data_start = (header_end + alignment - 1) // alignment * alignment
                data_end = data_start + end
            except _Truncated:
                raise OiLocalError(f"The model file {path} is truncated: it ends inside its header "
                                   f"({size} bytes). {advice}") from None
            except (_Garbled, ValueError, KeyError, OverflowError) as error:
                raise OiLocalError(f"The model file {path} is damaged: its GGUF header cannot be read "
                                   f"({error}). {advice}") from None
    except OSError as error:
        raise OiLocalError(f"The model file {path} cannot be read: {error}.") from None
    if data_end > size:
        raise OiLocalError(f"The model file {path} is truncated: it has {size} bytes but its header needs "
                           f"{data_end}. An interrupted download? {advice}")
    return GgufCheck(path, version, n_tensors, data_end, size, template, arch)
