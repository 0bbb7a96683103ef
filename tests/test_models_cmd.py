"""`oi-local models ...` through the real CLI in a subprocess, and `interpreter --local_models` in tmux."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hub_standin import HubStandin, sha256_of

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


class Tmux:
    def __init__(self, name: str, command: str, env: dict[str, str]) -> None:
        self.name = name
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "160", "-y", "50",
                        f"env {exports} {command}; echo EXITED-$?; sleep 60"], check=True)

    def keys(self, *keys: str) -> None:
        for key in keys:
            subprocess.run(["tmux", "send-keys", "-t", self.name, key], check=True)
            time.sleep(0.15)

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name, "-S", "-200"],
                              capture_output=True, text=True, check=True).stdout

    def wait_for(self, text: str, *, after: str | None = None, timeout: float = 30) -> str:
        """Wait until `text` is on the screen (below the last `after`, when given); return the screen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            tail = screen.rsplit(after, 1)[1] if after and after in screen else ("" if after else screen)
            if text in tail:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} did not appear; the screen was:\n{self.screen()}")

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


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

    term = Tmux(f"oi-models-{os.getpid()}", f"{BIN / 'interpreter'} --local_models",
                {"OI_LOCAL_HOME": str(home), "HF_ENDPOINT": "http://127.0.0.1:9", "TERM": "xterm-256color"})
    try:
        menu = "» List the models on disk"
        term.wait_for(menu)
        term.keys("Enter")  # List the models on disk
        screen = term.wait_for(menu, after="Models in")
        table = screen.rsplit("Models in", 1)[1]
        assert "smollm2-135m" in table and "kept-outside" in table and "verified" in table

        term.keys("Down", "Down", "Down", "Enter")  # Delete a model
        term.wait_for("Which model do you want to delete?", after="Delete a model")
        term.keys("Down", "Enter")  # the second listed: smollm2-135m (sorted by id)
        term.wait_for("Delete smollm2-135m and its file")
        term.keys("n")
        term.wait_for(menu, after="Nothing deleted.")
        assert stored.exists()

        term.keys("Down", "Down", "Down", "Enter")
        term.wait_for("Which model do you want to delete?", after="Nothing deleted.")
        term.keys("Down", "Enter")
        term.wait_for("Delete smollm2-135m and its file", after="Nothing deleted.")
        term.keys("y")
        term.wait_for(menu, after="Deleted smollm2-135m")
        assert not stored.exists() and outside.exists()

        term.keys("Escape")  # leaves from the top menu
        term.wait_for("EXITED-0")
    finally:
        term.kill()
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

    term = Tmux(f"oi-models-b-{os.getpid()}", f"{BIN / 'interpreter'} --local_models",
                {"OI_LOCAL_HOME": str(home), "HF_ENDPOINT": "http://127.0.0.1:9", "TERM": "xterm-256color"})
    menu = "» List the models on disk"
    try:
        term.wait_for(menu)
        term.keys("Down", "Down", "Enter")  # Verify a model
        term.wait_for("Which model do you want to verify?")
        term.keys("Escape")  # back to the menu, nothing verified
        term.wait_for(menu, after="Which model do you want to verify?")

        term.keys("Down", "Down", "Down", "Down", "Enter")  # Import a file
        term.wait_for("Path of the .gguf or .llamafile to import:")
        term.keys(str(to_import))
        term.keys("Enter")
        term.wait_for("Copy it into the models folder?")
        term.keys("n")
        term.wait_for(menu, after="Imported other-model")

        term.keys("Down", "Down", "Down", "Down", "Down", "Enter")  # Show the models folder
        term.wait_for(menu, after=f"Models folder: {home / 'models'}")

        term.keys("C-c")  # Ctrl-C at the top menu leaves cleanly
        screen = term.wait_for("EXITED-0")
        assert "Traceback" not in screen
    finally:
        term.kill()
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
    term = Tmux(f"oi-models-c-{os.getpid()}", f"{BIN / 'interpreter'} --local_models",
                {"OI_LOCAL_HOME": str(home), "HF_ENDPOINT": "http://127.0.0.1:9", "TERM": "xterm-256color"})
    try:
        term.wait_for("» List the models on disk")
        term.keys("Down", "Enter")  # Download a model from the catalog
        screen = term.wait_for("Download which model?")
        assert "SmolLM2 135M Instruct" in screen
        # walk down to the test model (it is the only one this machine can get without the hub)
        for _ in range(60):
            if "» " in term.screen() and "SmolLM2 135M Instruct" in term.screen().split("» ", 1)[1].splitlines()[0]:
                break
            term.keys("Down")
        term.keys("Enter")
        term.wait_for("smollm2-135m is ready")
        term.keys("Escape")
        term.wait_for("EXITED-0")
    finally:
        term.kill()
    assert (home / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf").exists()
