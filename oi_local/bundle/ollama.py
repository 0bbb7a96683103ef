"""Ollama models in Ollama's own on-disk layout, read on one machine and placed on another.

    <models>/manifests/<host>/<namespace>/<model>/<tag>    the manifest (JSON: config and layers, by digest)
    <models>/blobs/sha256-<hex>                            each layer and the config, named by its sha256

<models> is OLLAMA_MODELS, or ~/.ollama/models. A name is `model[:tag]` (library/, registry.ollama.ai and
`latest` implied), `namespace/model[:tag]` or `host/namespace/model[:tag]`.
Standard library only: the installer places the models on the target.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from oi_local import env
from oi_local.bundle.manifest import BundleError
from oi_local.files import sha256_file, write_atomic

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_DIGEST = re.compile(r"^sha256[:-]([0-9a-f]{64})$")


@dataclass(frozen=True)
class OllamaName:
    host: str
    namespace: str
    model: str
    tag: str

    @classmethod
    def parse(cls, text: str) -> OllamaName:
        text = text.strip()
        colon = text.rfind(":")
        name, tag = (text[:colon], text[colon + 1:]) if colon > text.rfind("/") else (text, "")
        parts = name.split("/")
        if len(parts) == 1:
            parts = [DEFAULT_HOST, DEFAULT_NAMESPACE, *parts]
        elif len(parts) == 2:
            parts = [DEFAULT_HOST, *parts]
        tag = tag or DEFAULT_TAG
        if len(parts) != 3 or not all(_PART.match(p) for p in (*parts[1:], tag)) or not re.match(r"^[A-Za-z0-9.:-]+$", parts[0]):
            raise BundleError(f"{text!r} is not an Ollama model name; write it as Ollama does, e.g. llama3.2:1b or "
                              "namespace/model:tag (`ollama list` shows them).")
        return cls(parts[0], parts[1], parts[2], tag)

    @property
    def manifest_path(self) -> str:
        return f"manifests/{self.host}/{self.namespace}/{self.model}/{self.tag}"

    def __str__(self) -> str:
        if (self.host, self.namespace) == (DEFAULT_HOST, DEFAULT_NAMESPACE):
            return f"{self.model}:{self.tag}"
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"


@dataclass(frozen=True)
class Blob:
    digest: str  # "sha256:<hex>"
    size: int

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]

    @property
    def file_name(self) -> str:
        return f"sha256-{self.hex}"


@dataclass(frozen=True)
class OllamaModel:
    name: OllamaName
    manifest: bytes  # the manifest file's bytes, as Ollama wrote them
    blobs: tuple[Blob, ...]  # the config first, then the layers


def models_dir(environ: dict[str, str] | None = None) -> Path:
    configured = env.get(env.OLLAMA_MODELS, environ)
    return Path(configured).expanduser() if configured else Path.home() / ".ollama" / "models"


def blob_path(root: Path, blob: Blob) -> Path:
    return Path(root) / "blobs" / blob.file_name


def parse_manifest(data: bytes, *, where: str) -> tuple[Blob, ...]:
    try:
        manifest = json.loads(data)
        items = [manifest["config"], *manifest["layers"]]
        blobs = []
        for item in items:
            match = _DIGEST.match(str(item["digest"]).lower())
            if not match:
                raise ValueError(f"the digest {item['digest']!r} is not sha256:<64 hex>")
            blob = Blob(f"sha256:{match.group(1)}", int(item["size"]))
            if blob not in blobs:
                blobs.append(blob)
    except (ValueError, KeyError, TypeError) as error:
        raise BundleError(f"The Ollama manifest {where} is not one Ollama wrote ({error}); check it with "
                          "`ollama show` or pull the model again.") from error
    return tuple(blobs)


def read_model(root: Path, text: str) -> OllamaModel:
    """A model from an Ollama models folder, its blobs present with the sizes its manifest says."""
    name = OllamaName.parse(text)
    path = Path(root) / name.manifest_path
    if not path.is_file():
        have = installed_names(root)
        listing = f" The models there: {', '.join(have[:12])}." if have else " There is no model there."
        raise BundleError(f"There is no Ollama model {name} in {root} (no {path}).{listing} Set OLLAMA_MODELS if "
                          "Ollama keeps its models elsewhere (a Linux service uses /usr/share/ollama/.ollama/models).")
    data = path.read_bytes()
    blobs = parse_manifest(data, where=str(path))
    for blob in blobs:
        file = blob_path(root, blob)
        if not file.is_file() or file.stat().st_size != blob.size:
            raise BundleError(f"The Ollama model {name} is incomplete: its blob {file} is missing or not "
                              f"{blob.size:,} bytes. Pull it again with `ollama pull {name}`.")
    return OllamaModel(name, data, blobs)


def installed_names(root: Path) -> list[str]:
    base = Path(root) / "manifests"
    if not base.is_dir():
        return []
    names = []
    for path in sorted(base.glob("*/*/*/*")):
        if path.is_file():
            host, namespace, model, tag = path.relative_to(base).parts
            names.append(str(OllamaName(host, namespace, model, tag)))
    return names


@dataclass(frozen=True)
class Placed:
    name: str
    blobs_copied: int
    blobs_present: int
    manifest: str  # "written", "unchanged", "kept" (the target has another model by that name: left as it is)


def place(root: Path, name: OllamaName, manifest: bytes, sources: dict[str, Path]) -> Placed:
    """Copy the blobs in (each checked against its digest), then the manifest, so Ollama never sees half a model.

    A blob already there with the right content is kept; the manifest is written last, atomically. A manifest
    already there with other content (another model of that name) is left as it is."""
    root = Path(root)
    blobs = parse_manifest(manifest, where=name.manifest_path)
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    copied = present = 0
    for blob in blobs:
        target = blob_path(root, blob)
        for stale in target.parent.glob(f".{target.name}.*.partial"):  # left by an interrupted run
            stale.unlink(missing_ok=True)
        if target.is_file() and target.stat().st_size == blob.size and sha256_file(target).hexdigest() == blob.hex:
            present += 1
            continue
        _copy_checked(sources[blob.digest], target, blob)
        copied += 1
    manifest_file = root / name.manifest_path
    if manifest_file.is_file():
        if manifest_file.read_bytes() == manifest:
            return Placed(str(name), copied, present, "unchanged")
        return Placed(str(name), copied, present, "kept")
    write_atomic(manifest_file, manifest, mode=0o644)
    return Placed(str(name), copied, present, "written")


def _copy_checked(source: Path, target: Path, blob: Blob) -> None:
    digest = hashlib.sha256()
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        with open(source, "rb") as src, os.fdopen(fd, "wb") as out:
            while block := src.read(1 << 20):
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != blob.hex:
            raise BundleError(f"The Ollama blob {source} does not match its digest {blob.digest}; it was not "
                              "placed. The bundle is damaged: copy it again.")
        os.chmod(temp, 0o644)
        os.replace(temp, target)
        temp = None
    finally:
        if temp is not None:
            Path(temp).unlink(missing_ok=True)
