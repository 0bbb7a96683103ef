"""Helpers for the bundle tests: an Ollama models folder in Ollama's real on-disk format."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path


def make_ollama_store(root: Path, gguf: Path) -> Path:
    """An Ollama models folder as Ollama writes it: the GGUF as the model layer, template/params/config blobs
    named sha256-<hex>, and the manifest under manifests/registry.ollama.ai/library/smollm2/135m."""
    blobs = root / "blobs"
    blobs.mkdir(parents=True)

    def blob(data: bytes | None, media_type: str, source: Path | None = None) -> dict:
        digest = hashlib.sha256(data if data is not None else source.read_bytes()).hexdigest()
        target = blobs / f"sha256-{digest}"
        if data is not None:
            target.write_bytes(data)
        else:
            shutil.copyfile(source, target)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": target.stat().st_size}

    model = blob(None, "application/vnd.ollama.image.model", gguf)
    template = blob(b"{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n",
                    "application/vnd.ollama.image.template")
    params = blob(json.dumps({"stop": ["<|im_start|>", "<|im_end|>"]}).encode(), "application/vnd.ollama.image.params")
    config = blob(json.dumps({"model_format": "gguf", "model_family": "llama", "model_families": ["llama"],
                              "model_type": "134.52M", "file_type": "Q4_1", "architecture": "amd64", "os": "linux",
                              "rootfs": {"type": "layers", "diff_ids": [model["digest"], template["digest"], params["digest"]]}}).encode(),
                  "application/vnd.docker.container.image.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": config, "layers": [model, template, params]}
    path = root / "manifests" / "registry.ollama.ai" / "library" / "smollm2" / "135m"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(manifest))
    return root
