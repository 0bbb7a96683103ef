"""gguf_info: the header of the real test model, checked against the gguf package's own reader, and clear errors."""

from __future__ import annotations

import shutil
import struct
import zipfile

import pytest

from oi_local.errors import OiLocalError
from oi_local.models import gguf_info


@pytest.fixture(scope="module")
def reference(test_model_path):
    """What gguf.GGUFReader (the package's full reader) says about the test model."""
    from gguf import GGUFReader

    reader = GGUFReader(test_model_path)

    def value(key):
        field = reader.fields.get(key)
        return None if field is None else field.contents()

    return {
        "value": value,
        "parameters": sum(int(t.n_elements) for t in reader.tensors),
        "weights": sum(int(t.n_bytes) for t in reader.tensors),
        "vocab": len(reader.fields["tokenizer.ggml.tokens"].data),
    }


def test_reads_the_test_model_like_the_gguf_package(test_model_path, reference):
    info = gguf_info.read(test_model_path)
    v = reference["value"]
    arch = v("general.architecture")
    assert info.architecture == arch == "llama"
    assert info.name == v("general.name")
    assert info.block_count == v(f"{arch}.block_count") == 30
    assert info.head_count == v(f"{arch}.attention.head_count") == 9
    assert info.kv_heads == v(f"{arch}.attention.head_count_kv") == 3
    assert info.embedding_length == v(f"{arch}.embedding_length") == 576
    assert info.head_dim == 576 // 9
    assert info.context_length == v(f"{arch}.context_length") == 8192
    assert info.chat_template == v("tokenizer.chat_template")
    assert "<|im_start|>" in info.chat_template
    assert info.file_type == "Q4_1"
    assert info.parameters == reference["parameters"]
    assert info.weights_bytes == reference["weights"]
    assert info.vocab_size == reference["vocab"] == 49152
    assert info.size_bytes == test_model_path.stat().st_size
    assert info.gguf_offset == 0


def test_to_architecture(test_model_path):
    arch = gguf_info.read(test_model_path).to_architecture()
    assert (arch.block_count, arch.kv_heads, arch.head_dim, arch.context_length) == (30, 3, 64, 8192)
    assert arch.head_count == 9 and arch.embedding_length == 576 and arch.vocab_size == 49152


def test_missing_file(tmp_path):
    with pytest.raises(OiLocalError) as info:
        gguf_info.read(tmp_path / "absent.gguf")
    assert "absent.gguf" in str(info.value) and "does not exist" in str(info.value)


def test_not_gguf_and_empty(tmp_path):
    text = tmp_path / "notes.gguf"
    text.write_text("hello, I am not a model\n" * 10)
    with pytest.raises(OiLocalError) as info:
        gguf_info.read(text)
    assert str(text) in str(info.value) and "not a GGUF model" in str(info.value)
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(OiLocalError) as info:
        gguf_info.read(empty)
    assert str(empty) in str(info.value) and "empty" in str(info.value)


@pytest.mark.parametrize("keep", [3, 24, 4096, 1_000_000, 50_000_000, -1])
def test_truncated_copies_are_named_as_truncated(test_model_path, tmp_path, keep):
    size = test_model_path.stat().st_size
    keep = size - 1 if keep == -1 else keep
    copy = tmp_path / "cut.gguf"
    with open(test_model_path, "rb") as src, open(copy, "wb") as dst:
        dst.write(src.read(keep))
    with pytest.raises(OiLocalError) as info:
        gguf_info.read(copy)
    message = str(info.value)
    assert str(copy) in message
    if keep >= 4:  # with the magic intact it is a truncated GGUF; with less it is not recognisable at all
        assert "truncated" in message and "download it again" in message


def test_unsupported_version(test_model_path, tmp_path):
    copy = tmp_path / "v9.gguf"
    data = bytearray(test_model_path.read_bytes()[:4096])
    data[4:8] = struct.pack("<I", 9)
    copy.write_bytes(bytes(data))
    with pytest.raises(OiLocalError) as info:
        gguf_info.read(copy)
    assert "version 9" in str(info.value)


def test_reads_the_gguf_inside_a_llamafile(test_model_path, tmp_path):
    """A llamafile is an executable with a zip appended; its weights are a stored .gguf member."""
    llamafile = tmp_path / "tiny.llamafile"
    llamafile.write_bytes(b"MZqFpD='\n" + b"\0" * 8000)  # stands for the APE launcher at the front
    with zipfile.ZipFile(llamafile, "a", compression=zipfile.ZIP_STORED) as archive:
        archive.write(test_model_path, "SmolLM2-135M-Instruct.Q4_1.gguf")
    info = gguf_info.read(llamafile)
    assert info.gguf_offset > 8000
    assert (info.block_count, info.kv_heads, info.context_length) == (30, 3, 8192)
    assert info.size_bytes == llamafile.stat().st_size
    assert info.weights_bytes == gguf_info.read(test_model_path).weights_bytes
    no_weights = tmp_path / "runtime-only.llamafile"
    shutil.copy(llamafile, no_weights)
    with zipfile.ZipFile(no_weights, "w") as archive:
        archive.writestr("readme.txt", "no weights here")
    with pytest.raises(OiLocalError) as info:
        gguf_info.read(no_weights)
    assert "holds no GGUF inside" in str(info.value)
