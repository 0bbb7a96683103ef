"""`oi-local models ...` through the real CLI in a subprocess, and `interpreter --local_models` in tmux."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hub_standin import HubStandin, sha256_of
from tmux_driver import Tmux

BIN = Path(sys.executable).parent
REPO = "standin/cli-models"


def oi_local(home: Path, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, OI_LOCAL_HOME=str(home), **(env or {}))
    return subprocess.run([str(BIN / "oi-local"), "models", *args], env=full_env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def as_json(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_import_list_verify_delete_as_json(tmp_path, test_model_path):
    home = tmp_path / "home"
    copy = tmp_path / "elsewhere" / "my-model.gguf"
    copy.parent.mkdir()
    shutil.copyfile(test_model_path, copy)

    imported = as_json(oi_local(home, "import", str(copy), "--id", "mine", "--copy", "--json"))["model"]
    stored = home / "models" / "my-model.gguf"
    assert imported["id"] == "mine" and Path(imported["path"]) == stored and stored.exists()
    assert imported["verified"] is True and imported["in_catalog"] is True  # same sha256 as smollm2-135m

    listed = as_json(oi_local(home, "list", "--json"))
    assert [m["id"] for m in listed["models"]] == ["mine"]
    assert listed["models"][0]["size_bytes"] == test_model_path.stat().st_size

    assert as_json(oi_local(home, "verify", "mine", "--json"))["model"]["verified"] is True
    with open(stored, "r+b") as f:
        f.seek(4096)
        f.write(b"\xff\xfe")
    bad = oi_local(home, "verify", "mine", "--json")
    assert bad.returncode == 1 and json.loads(bad.stdout)["model"]["verified"] is False

    refused = oi_local(home, "delete", "mine")
    assert refused.returncode == 1 and "--yes" in refused.stderr and stored.exists()
    deleted = as_json(oi_local(home, "delete", "mine", "--yes", "--json"))
    assert deleted == {"deleted": "mine", "file_removed": True, "path": str(stored)}
    assert not stored.exists() and copy.exists()
    assert as_json(oi_local(home, "list", "--json"))["models"] == []


def test_download_from_the_catalog_of_the_test_model_needs_no_network(tmp_path):
    home = tmp_path / "home"
    done = oi_local(home, "download", "smollm2-135m", "--json", env={"HF_ENDPOINT": "http://127.0.0.1:9"})
    model = as_json(done)["model"]
    assert model["verified"] is True and model["sha256"] == (
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")
    assert Path(model["path"]).parent == home / "models"


def test_download_through_a_user_catalog_entry_from_the_hub_standin(tmp_path):
    home = tmp_path / "home"
    blob = tmp_path / "Tiny-Q4.gguf"
    blob.write_bytes(os.urandom(2 * 2**20 + 5))
    (home / "config").mkdir(parents=True)
    (home / "config" / "model_catalog.yaml").write_text(f"""\
version: 1
models:
  - id: tiny-standin
    name: "Tiny stand-in"
    format: gguf
    file: Tiny-Q4.gguf
    size_bytes: {blob.stat().st_size}
    sha256: unknown
    sources:
      - kind: hf
        repo: {REPO}
    architecture: {{block_count: 2, kv_heads: 1, head_count: 2, embedding_length: 16, context_length: 2048}}
    capabilities: [chat]
    license: mit
    chat_template: chatml
""")
    with HubStandin() as hub:
        hub.add_file(REPO, blob.name, blob)
        env = {"HF_ENDPOINT": hub.endpoint}
        model = as_json(oi_local(home, "download", "tiny-standin", "--json", env=env))["model"]
        assert model["verified"] is True and model["sha256"] == sha256_of(blob)
        hub.wait_idle()
        assert hub.bytes_served == blob.stat().st_size
        hub.reset_counters()
        offline = {**env, "HF_HUB_OFFLINE": "1"}
        again = as_json(oi_local(home, "download", "tiny-standin", "--json", env=offline))["model"]
        assert again["path"] == model["path"] and hub.count() == 0
        as_json(oi_local(home, "delete", "tiny-standin", "--yes", "--json"))
        absent = oi_local(home, "download", "tiny-standin", env=offline)
        assert absent.returncode == 1 and "HF_HUB_OFFLINE" in absent.stderr and "Traceback" not in absent.stderr
        assert hub.count() == 0


def test_list_all_shows_every_catalog_model_with_its_fit(tmp_path):
    from oi_local.models import catalog, fit

    if not hasattr(fit, "rank"):
        pytest.skip("fit.rank (H1's part) is not in the tree yet")
    listed = as_json(oi_local(tmp_path / "home", "list", "--all", "--json"))
    assert {e["id"] for e in listed["catalog"]} == {e.id for e in catalog.load()}
    smol = next(e for e in listed["catalog"] if e["id"] == "smollm2-135m")
    assert smol["fits"] is True and smol["on_disk"] is False and smol["reason"]
    assert all(e["reason"] for e in listed["catalog"] if not e["fits"])


def test_errors_are_one_paragraph_without_traceback(tmp_path):
    home = tmp_path / "home"
    for args, words in ((("download", "no-such-model"), "not in the model catalog"),
                        (("verify", "ghost"), "no model 'ghost'"),
                        (("import", str(tmp_path / "nothing.gguf")), "not a file")):
        done = oi_local(home, *args)
        assert done.returncode == 1, done
        assert words in done.stderr and "Traceback" not in done.stderr


def test_local_models_without_a_terminal_points_to_the_commands(tmp_path):
    done = subprocess.run([str(BIN / "interpreter"), "--local_models"], env=dict(os.environ, OI_LOCAL_HOME=str(tmp_path)),
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert done.returncode == 1 and "oi-local models list" in done.stderr and "Traceback" not in done.stderr


# ---- interpreter --local_models in a real terminal -------------------------------------------------------------


@pytest.mark.tmux
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_local_models_lists_and_deletes_after_confirmation(tmp_path, test_model_path):
    home = tmp_path / "home"
    outside = tmp_path / "outside.gguf"
    shutil.copyfile(test_model_path, outside)
    as_json(oi_local(home, "download", "smollm2-135m", "--json"))
    as_json(oi_local(home, "import", str(outside), "--id", "kept-outside", "--json"))
    stored = home / "models" / test_model_path.name
    assert stored.exists()

    term = Tmux(f"{BIN / 'interpreter'} --local_models", name="oi-models", env=
                {"OI_LOCAL_HOME": str(home), "HF_ENDPOINT": "http://127.0.0.1:9", "TERM": "xterm-256color"})
    try:
        menu = "» List the models on disk"
        term.wait_for(menu)
        term.send("Enter")  # List the models on disk
        screen = term.wait_for(menu, after="Models in")
        table = screen.rsplit("Models in", 1)[1]
        assert "smollm2-135m" in table and "kept-outside" in table and "verified" in table

        term.send("Down", "Down", "Down", "Enter")  # Delete a model
        term.wait_for("Which model do you want to delete?", after="Delete a model")
        term.send("Down", "Enter")  # the second listed: smollm2-135m (sorted by id)
        term.wait_for("Delete smollm2-135m and its file")
        term.send("n")
        term.wait_for(menu, after="Nothing deleted.")
        assert stored.exists()

        term.send("Down", "Down", "Down", "Enter")
        term.wait_for("Which model do you want to delete?", after="Nothing deleted.")
        term.send("Down", "Enter")
        term.wait_for("Delete smollm2-135m and its file", after="Nothing deleted.")
        term.send("y")
        term.wait_for(menu, after="Deleted smollm2-135m")
        assert not stored.exists() and outside.exists()

        term.send("Escape")  # leaves from the top menu
        term.wait_for("EXITED-0")
    finally:
        term.close()
    listed = as_json(oi_local(home, "list", "--json"))
    assert [m["id"] for m in listed["models"]] == ["kept-outside"]


@pytest.mark.tmux
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_local_models_escape_goes_back_import_and_show_folder(tmp_path, test_model_path):
    home = tmp_path / "home"
    as_json(oi_local(home, "download", "smollm2-135m", "--json"))
    to_import = tmp_path / "extra" / "Other-Model.gguf"
    to_import.parent.mkdir()
    shutil.copyfile(test_model_path, to_import)

    term = Tmux(f"{BIN / 'interpreter'} --local_models", name="oi-models-b", env=
                {"OI_LOCAL_HOME": str(home), "HF_ENDPOINT": "http://127.0.0.1:9", "TERM": "xterm-256color"})
    menu = "» List the models on disk"
    try:
        term.wait_for(menu)
        term.send("Down", "Down", "Enter")  # Verify a model
        term.wait_for("Which model do you want to verify?")
        term.send("Escape")  # back to the menu, nothing verified
        term.wait_for(menu, after="Which model do you want to verify?")

        term.send("Down", "Down", "Down", "Down", "Enter")  # Import a file
        term.wait_for("Path of the .gguf or .llamafile to import:")
        term.send(str(to_import))
        term.send("Enter")
        term.wait_for("Copy it into the models folder?")
        term.send("n")
        term.wait_for(menu, after="Imported other-model")

        term.send("Down", "Down", "Down", "Down", "Down", "Enter")  # Show the models folder
        term.wait_for(menu, after=f"Models folder: {home / 'models'}")

        term.send("C-c")  # Ctrl-C at the top menu leaves cleanly
        screen = term.wait_for("EXITED-0")
        assert "Traceback" not in screen
    finally:
        term.close()
    ids = [m["id"] for m in as_json(oi_local(home, "list", "--json"))["models"]]
    assert ids == ["other-model", "smollm2-135m"]
    assert to_import.exists()


@pytest.mark.tmux
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_local_models_download_offers_what_fits(tmp_path):
    from oi_local.models import fit

    if not hasattr(fit, "rank"):
        pytest.skip("fit.rank (H1's part) is not in the tree yet")
    home = tmp_path / "home"
    term = Tmux(f"{BIN / 'interpreter'} --local_models", name="oi-models-c", env=
                {"OI_LOCAL_HOME": str(home), "HF_ENDPOINT": "http://127.0.0.1:9", "TERM": "xterm-256color"})
    try:
        term.wait_for("» List the models on disk")
        term.send("Down", "Enter")  # Download a model from the catalog
        screen = term.wait_for("Download which model?")
        assert "SmolLM2 135M Instruct" in screen
        # walk down to the test model (it is the only one this machine can get without the hub)
        for _ in range(60):
            if "» " in term.screen() and "SmolLM2 135M Instruct" in term.screen().split("» ", 1)[1].splitlines()[0]:
                break
            term.send("Down")
        term.send("Enter")
        term.wait_for("smollm2-135m is ready")
        term.send("Escape")
        term.wait_for("EXITED-0")
    finally:
        term.close()
    assert (home / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf").exists()
