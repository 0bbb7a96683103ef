"""manifest.json of a bundle: every file with its size and sha256, the target, and how the bundle was made.

Standard library only: the installer reads it on a machine that has no oi_local yet.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from oi_local.errors import OiLocalError

MANIFEST = "manifest.json"
FORMAT = "oi_local-bundle"
FORMAT_VERSION = 1
INSTALL_SH = "install.sh"
INSTALLER_DIR = "installer"
WHEELS_DIR = "wheels"
REQUIREMENTS = "wheels/requirements.txt"
MODELS_DIR = "models"
CATALOG = "models/catalog.json"
OLLAMA_DIR = "ollama"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class BundleError(OiLocalError):
    """A bundle that cannot be used as it is (damaged, incomplete, for another machine)."""


@dataclass(frozen=True)
class FileRecord:
    path: str  # relative to the bundle's root, "/" separated
    size: int
    sha256: str


@dataclass(frozen=True)
class WheelRecord:
    name: str  # the project name as pip knows it
    version: str
    file: str  # path in the bundle
    origin: str  # "index" (pip download), "built" (from source here), "cache" (scripts/install.sh), "given"


@dataclass(frozen=True)
class ModelRecord:
    id: str
    name: str
    format: str  # "gguf" | "llamafile"
    file: str  # path in the bundle
    size: int
    sha256: str


@dataclass(frozen=True)
class OllamaRecord:
    name: str  # "registry.ollama.ai/library/smollm2:135m"
    manifest: str  # path in the bundle: ollama/manifests/<host>/<namespace>/<model>/<tag>
    blobs: tuple[str, ...]  # digests "sha256:<hex>"; the files are ollama/blobs/sha256-<hex>


@dataclass(frozen=True)
class Manifest:
    oi_local_version: str
    created: str  # ISO 8601, UTC
    command: str  # the command line that made it
    made_on: str  # the machine that made it, in words
    target: dict  # a Target's to_json()
    llama_cpp: dict  # version, wheel, cmake_args, backend, built_on
    wheels: tuple[WheelRecord, ...]
    pip_wheel: str  # path in the bundle of pip's own wheel (the installer runs pip from it)
    models: tuple[ModelRecord, ...]
    ollama: tuple[OllamaRecord, ...]
    files: tuple[FileRecord, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def payload_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> dict:
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "oi_local_version": self.oi_local_version, "created": self.created, "command": self.command,
            "made_on": self.made_on, "target": self.target, "llama_cpp": self.llama_cpp,
            "wheels": [vars(w) for w in self.wheels], "pip_wheel": self.pip_wheel,
            "models": [vars(m) for m in self.models],
            "ollama": [{"name": o.name, "manifest": o.manifest, "blobs": list(o.blobs)} for o in self.ollama],
            "notes": list(self.notes),
            "files": [vars(f) for f in self.files],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, sort_keys=False) + "\n"


def loads(text: str, *, where: str = MANIFEST) -> Manifest:
    """A manifest from its JSON text; a damaged or foreign one raises BundleError naming `where`."""
    try:
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise ValueError("it is not an oi_local bundle manifest")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(f"it is format {data['format_version']}, newer than this oi_local reads "
                             f"({FORMAT_VERSION}); install the bundle with the install.sh it came with")
        files = tuple(FileRecord(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in data["files"])
        for record in files:
            check_member_path(record.path)
            if not _SHA256.match(record.sha256) or record.size < 0:
                raise ValueError(f"the entry for {record.path} has no valid size and sha256")
        return Manifest(
            oi_local_version=str(data["oi_local_version"]), created=str(data["created"]),
            command=str(data.get("command", "")), made_on=str(data.get("made_on", "")),
            target=dict(data["target"]), llama_cpp=dict(data.get("llama_cpp") or {}),
            wheels=tuple(WheelRecord(**w) for w in data["wheels"]), pip_wheel=str(data["pip_wheel"]),
            models=tuple(ModelRecord(**m) for m in data.get("models", [])),
            ollama=tuple(OllamaRecord(o["name"], o["manifest"], tuple(o["blobs"])) for o in data.get("ollama", [])),
            files=files, notes=tuple(data.get("notes", [])),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise BundleError(
            f"The bundle's {where} cannot be read ({error}). The bundle is damaged or incomplete: copy the "
            "bundle file again from the machine that made it (or make a new one with `oi-local bundle create`); "
            "nothing was installed."
        ) from error


def load(root: Path) -> Manifest:
    path = Path(root) / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BundleError(
            f"{path} is missing, so {root} is not a whole oi_local bundle (a truncated copy, or the wrong "
            "folder). Unpack the bundle file again (`tar -xf oi_local-bundle.tar`) and run "
            "oi_local-bundle/install.sh; nothing was installed."
        ) from None
    except OSError as error:
        raise BundleError(f"{path} cannot be read ({error.strerror or error}); nothing was installed.") from error
    return loads(text, where=str(path))


def check_member_path(path: str) -> str:
    """A path inside the bundle: relative, "/" separated, no "..", nothing hidden at the top."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\\" in path or "\0" in path or str(pure) != path:
        raise ValueError(f"{path!r} is not a plain path inside the bundle")
    return path
