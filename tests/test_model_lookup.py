"""`oi-local serve`, `oi-local models download` and `interpreter --local` look models up the same way: the
built-in provider's resolve (serve no longer has its own copy), with one "Did you mean" for a typo."""

from __future__ import annotations

import io
import os
import subprocess
import zipfile
from pathlib import Path

import pytest
from local_support import INTERPRETER, base_env

BIN = INTERPRETER.parent


def run(argv: list[str], home: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=base_env(home), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("command", [
    ["oi-local", "serve"],
    ["oi-local", "models", "download"],
    ["interpreter", "--local", "--provider", "llamacpp", "-y", "hi", "--model"],
])
def test_a_typo_gets_the_same_suggestion_everywhere(command, tmp_path):
    done = run([str(BIN / command[0]), *command[1:], "smollm2-13"], tmp_path / "home")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.startswith("Error: ") and "Did you mean: smollm2-135m" in done.stderr, done.stderr


def test_serve_takes_an_imported_model_by_its_id(tmp_path, test_model_path):
    """Through the built-in provider's resolve, serve knows the store's ids too (its own copy knew only catalog ids)."""
    home = tmp_path / "home"
    own = tmp_path / "mine.gguf"
    own.write_bytes(test_model_path.read_bytes())
    imported = run([str(BIN / "oi-local"), "models", "import", str(own), "--id", "my-own-model"], home)
    assert imported.returncode == 0, imported.stderr
    proc = subprocess.Popen([str(BIN / "oi-local"), "serve", "my-own-model", "-c", "512", "--fresh_server"],
                            env=dict(base_env(home), COLUMNS="200"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        text = "".join(lines)
        assert "Server ready" in text and "my-own-model" in text and "512 tokens" in text, text + proc.stderr.read()
    finally:
        proc.send_signal(2)  # SIGINT: serve stops its server and exits
        assert proc.wait(30) == 0


def fake_llamafile(path: Path, model: Path, marker: Path) -> None:
    """A llamafile's shape: a shell script that is also a zip holding the GGUF (stored). Running it leaves `marker`."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as z:
        z.write(model, "model.gguf")
    path.write_bytes(f"#!/bin/sh\ntouch {marker}\nexit 0\n".encode() + archive.getvalue())


def test_serve_refuses_an_unverified_llamafile_as_local_mode_does(tmp_path, test_model_path):
    """Issue 12: serve executed a llamafile whose sha256 is unknown, while `interpreter --local` refused it."""
    fake, marker = tmp_path / "fake.llamafile", tmp_path / "it-ran"
    fake_llamafile(fake, test_model_path, marker)
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "model_catalog.yaml").write_text(f"""models:
  - id: unverified-llamafile
    name: "A llamafile with no published sha256"
    format: llamafile
    file: fake.llamafile
    size_bytes: {fake.stat().st_size}
    sha256: unknown
    sources:
      - kind: local
        path: {fake}
    architecture: {{block_count: 30, kv_heads: 3, head_count: 9, embedding_length: 576, context_length: 8192}}
    capabilities: [chat]
    license: apache-2.0
    chat_template: chatml
""")
    served = run([str(BIN / "oi-local"), "serve", "unverified-llamafile"], home)
    local = run([str(BIN / "interpreter"), "--local", "--provider", "llamafile", "--model", "unverified-llamafile",
                 "-y", "hi"], home)
    for done in (served, local):
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
        assert "has not been verified" in done.stderr and "not executed" in done.stderr, done.stderr
    assert served.stderr == local.stderr  # one rule, one wording
    assert not marker.exists() and not os.access(marker, os.F_OK)  # the file never ran
