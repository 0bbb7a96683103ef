"""The installer of an unpacked bundle, run on the target by install.sh (standard library only).

Order: read the manifest and check this machine against the bundle's target, then every file's sha256,
then the disk space, all before anything is written; then the virtual environment (pip --no-index from the
bundle's wheels), the models into the store and the offline default (by the installed oi_local), Ollama's
models, a self-check, and the command to use. Each step finds what an earlier, interrupted run left and
completes it, so after a kill -9 the same command simply runs again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from oi_local import env
from oi_local.bundle import manifest as mf
from oi_local.bundle import ollama
from oi_local.bundle import target as tg
from oi_local.bundle.manifest import BundleError, Manifest
from oi_local.errors import OiLocalError
from oi_local.files import format_bytes, nearest_existing, write_json_atomic

STATE_FILE = ".oi_local-bundle.json"  # in the venv: what this installer did there, to resume after an interruption
VENV_GROWTH = 5.0  # installed bytes per wheel byte, generously (measured 4.3 with bytecode, 3.2 without)
SPACE_MARGIN = 50_000_000  # left free on every filesystem after the install


@dataclass(frozen=True)
class InstallOptions:
    bundle: Path
    prefix: Path
    self_check: bool = True
    check_only: bool = False
    ollama_dir: Path | None = None


def default_prefix(environ: dict[str, str] | None = None) -> Path:
    """$OI_LOCAL_HOME/venv, else the platform's data folder: ~/.local/share/oi_local/venv on Linux."""
    return app_data_dir(environ) / "venv"


def app_data_dir(environ: dict[str, str] | None = None) -> Path:
    """oi_local's data folder as platformdirs names it (this runs before platformdirs is installed)."""
    home = env.get(env.OI_LOCAL_HOME, environ)
    if home:
        return Path(home).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "oi_local"
    data_home = (env.get(env.XDG_DATA_HOME, environ) or "").strip() or str(Path.home() / ".local" / "share")
    return Path(data_home) / "oi_local"


def models_dir(environ: dict[str, str] | None = None) -> Path:
    return app_data_dir(environ) / "models"


USAGE = """usage: install.sh [--prefix DIR] [--no-self-check] [--check] [--ollama-models DIR]

Install this oi_local offline bundle. No network is used: pip installs from the bundle's wheels (--no-index).
  --prefix DIR          the virtual environment to create (default: {prefix})
  --no-self-check       do not start the server on the first model for one reply at the end
  --check               check this machine and every file of the bundle; install nothing
  --ollama-models DIR   Ollama's models folder (default: OLLAMA_MODELS, else ~/.ollama/models)
Set PYTHON=/path/to/python3 to run it with another Python, OI_LOCAL_HOME=DIR to keep all of oi_local in DIR."""


def parse_arguments(argv: list[str]) -> dict:
    """The installer's few options (it runs before anything but the standard library is there)."""
    options: dict = {"prefix": None, "self_check": True, "check": False, "ollama_models": None, "help": False}
    with_value = {"--prefix": "prefix", "--ollama-models": "ollama_models"}
    rest = list(argv)
    while rest:
        word = rest.pop(0)
        name, _, inline = word.partition("=")
        if name in with_value:
            value = inline or (rest.pop(0) if rest else "")
            if not value:
                raise BundleError(f"{name} needs a folder after it, e.g. {name} ~/oi_local. Run install.sh --help.")
            options[with_value[name]] = Path(value).expanduser()
        elif word == "--no-self-check":
            options["self_check"] = False
        elif word == "--check":
            options["check"] = True
        elif word in ("-h", "--help"):
            options["help"] = True
        else:
            raise BundleError(f"install.sh does not take {word!r}. Run install.sh --help to see what it takes.")
    return options


def main(argv: list[str], *, bundle: str) -> int:
    try:
        given = parse_arguments(argv)
        if given["help"]:
            print(USAGE.format(prefix=default_prefix()))
            return 0
        options = InstallOptions(Path(bundle), (given["prefix"] or default_prefix()).absolute(),
                                 self_check=given["self_check"], check_only=given["check"],
                                 ollama_dir=given["ollama_models"])
        install(options)
    except OiLocalError as error:
        print(f"Error: {error}", file=sys.stderr, flush=True)
        return error.exit_code
    except KeyboardInterrupt:
        print("\nInterrupted. Run the same command again to finish the install.", file=sys.stderr)
        return 130
    return 0


def say(message: str) -> None:
    print(f"oi_local bundle: {message}", flush=True)


def install(options: InstallOptions) -> None:
    started = time.monotonic()
    bundle = options.bundle
    manifest = mf.load(bundle)
    say(f"bundle of oi_local {manifest.oi_local_version}, made {manifest.created} ({manifest.made_on})")
    install_command = f"{bundle}/{mf.INSTALL_SH}"
    tg.check(tg.Target.from_json(manifest.target), tg.this_machine(), install_command=install_command)

    from oi_local.bundle.verify import verify_dir

    say(f"checking {len(manifest.files)} files ({format_bytes(manifest.payload_bytes)}) against the manifest")
    report = verify_dir(bundle, manifest=manifest)
    if not report.installable:
        raise report.refusal()
    for difference in report.differences:
        say(f"note: {difference.path} is not part of the bundle (ignored)")
    prefix = options.prefix
    ollama_root = Path(options.ollama_dir).expanduser() if options.ollama_dir else ollama.models_dir()
    check_space(space_plan(manifest, bundle, prefix, ollama_root))
    if options.check_only:
        say(f"this machine fits the bundle and all files are intact; nothing was installed ({time.monotonic() - started:.1f} s)")
        return

    python = ensure_venv(prefix, manifest)
    install_wheels(python, prefix, manifest, bundle)
    finish = run_in_venv(prefix, ["-m", "oi_local.bundle.finish", str(bundle)])
    if finish.returncode != 0:
        raise BundleError(f"Importing the models and writing the settings failed (exit {finish.returncode}, its "
                          "message is above). Fix that and run the same command again; what is done stays done.")
    placed = place_ollama_models(manifest, bundle, ollama_root)
    if options.self_check:
        self_check(prefix, manifest)
    say(f"done in {time.monotonic() - started:.0f} s; nothing was downloaded.")
    print(next_steps(prefix, manifest, placed), flush=True)


# ---- space ------------------------------------------------------------------------------------------------------


def space_plan(manifest: Manifest, bundle: Path, prefix: Path, ollama_root: Path) -> list[tuple[str, Path, int]]:
    """(what, where, bytes still to be written there) for each destination."""
    plan = []
    state = read_state(prefix)
    if state.get("wheels") != "done" or state.get("bundle") != manifest.created:
        wheel_bytes = sum(f.size for f in manifest.files if f.path.startswith(mf.WHEELS_DIR + "/"))
        plan.append(("the virtual environment", prefix, int(wheel_bytes * VENV_GROWTH)))
    models = models_dir()
    model_bytes = 0
    for model in manifest.models:
        there = models / Path(model.file).name
        if not (there.is_file() and there.stat().st_size == model.size):
            model_bytes += model.size
    if model_bytes:
        plan.append(("the models", models, model_bytes))
    blob_bytes = 0
    for record in manifest.files:
        if record.path.startswith(f"{mf.OLLAMA_DIR}/blobs/"):
            there = ollama_root / "blobs" / Path(record.path).name
            if not (there.is_file() and there.stat().st_size == record.size):
                blob_bytes += record.size
    if blob_bytes:
        plan.append(("the Ollama models", ollama_root, blob_bytes))
    return plan


def check_space(plan: list[tuple[str, Path, int]]) -> None:
    by_device: dict[int, list[tuple[str, Path, int]]] = {}
    for item in plan:
        by_device.setdefault(nearest_existing(item[1]).stat().st_dev, []).append(item)
    for items in by_device.values():
        needed = sum(n for _, _, n in items) + SPACE_MARGIN
        where = nearest_existing(items[0][1])
        free = shutil.disk_usage(where).free
        if needed > free:
            parts = ", ".join(f"{what} in {folder} {format_bytes(n)}" for what, folder, n in items)
            raise BundleError(
                f"Not enough disk space: the install needs about {format_bytes(needed)} on the filesystem of {where} "
                f"({parts}, plus {format_bytes(SPACE_MARGIN)} to spare) and it has {format_bytes(free)} free. Nothing "
                "was copied. Free some space, or install elsewhere: --prefix DIR for the virtual environment, "
                "OI_LOCAL_HOME=DIR for the models and settings."
            )



# ---- the virtual environment ----------------------------------------------------------------------------------


def read_state(prefix: Path) -> dict:
    try:
        return json.loads((prefix / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def write_state(prefix: Path, **changes: object) -> None:
    state = read_state(prefix)
    state.update(changes)
    write_json_atomic(prefix / STATE_FILE, state)


def venv_python(prefix: Path) -> Path:
    return prefix / "bin" / "python"


def ensure_venv(prefix: Path, manifest: Manifest) -> Path:
    """The virtual environment this installer made in `prefix`, made (again) when it is missing, broken, or was
    left halfway by an interrupted pip: a half-installed package cannot be trusted, so that one starts afresh."""
    python = venv_python(prefix)
    state = read_state(prefix)
    if prefix.exists() and not state and any(prefix.iterdir()):
        raise BundleError(
            f"{prefix} already exists and is not a virtual environment this installer made. Nothing was changed. "
            "Choose another folder with --prefix DIR, or move that one away."
        )
    if state.get("venv") == "done" and state.get("wheels") != "started" and _python_version(python) == _this_python():
        return python
    if state.get("wheels") == "started":
        say("the previous install was interrupted while pip was installing; making the virtual environment afresh")
    else:
        say(f"creating the virtual environment {prefix}")
    prefix.mkdir(parents=True, exist_ok=True)
    write_json_atomic(prefix / STATE_FILE, {"venv": "started", "python": sys.executable})  # before venv runs: ours
    result = subprocess.run([sys.executable, "-m", "venv", "--clear", "--without-pip", str(prefix)],
                            capture_output=True, text=True)
    write_json_atomic(prefix / STATE_FILE, {"venv": "started", "python": sys.executable})  # --clear removed it
    if result.returncode != 0:
        raise BundleError(f"Creating the virtual environment {prefix} with {sys.executable} failed: "
                          f"{(result.stderr or result.stdout).strip()[-400:]}. Fix that and run the same command again.")
    write_state(prefix, venv="done")
    return python


def install_wheels(python: Path, prefix: Path, manifest: Manifest, bundle: Path) -> None:
    state = read_state(prefix)
    if state.get("wheels") == "done" and state.get("bundle") == manifest.created:
        say("the wheels are installed already")
        return
    write_state(prefix, wheels="started", bundle=manifest.created)
    wheels = bundle / mf.WHEELS_DIR
    say(f"installing {len(manifest.wheels)} wheels with pip --no-index (no network)")
    command = [str(python), str(bundle / manifest.pip_wheel / "pip"), "install", "--isolated", "--no-index",
               "--find-links", str(wheels), "--disable-pip-version-check", "--no-input", "--no-warn-script-location",
               "--no-compile",  # half of pip's time; Python compiles each module on its first import instead
               "--progress-bar", "off", "--quiet", "-r", str(bundle / mf.REQUIREMENTS)]
    result = subprocess.run(command, env=pip_environment())
    if result.returncode != 0:
        raise BundleError(
            f"pip could not install the bundle's wheels into {prefix} (exit {result.returncode}; its message is "
            "above). The bundle's wheel set is checked against its manifest, so this is usually a machine that "
            "differs from the bundle's target in a way the check did not catch; run the same command again once "
            "that is fixed."
        )
    write_state(prefix, wheels="done", bundle=manifest.created)


def child_environment() -> dict[str, str]:
    """Our environment for a program of the new venv: no PYTHONPATH or PYTHONHOME of this installer's run."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def pip_environment() -> dict[str, str]:
    """No pip setting of this machine (config files, PIP_* variables) may add an index or a link."""
    environment = {k: v for k, v in child_environment().items() if not k.startswith("PIP_")}
    environment["PIP_CONFIG_FILE"] = os.devnull
    return environment


def run_in_venv(prefix: Path, arguments: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv_python(prefix)), *arguments], env=child_environment())


def _python_version(python: Path) -> str | None:
    try:
        result = subprocess.run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                capture_output=True, text=True, timeout=env.TIMEOUTS.python_probe)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _this_python() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


# ---- Ollama, self-check, what next ----------------------------------------------------------------------------


def place_ollama_models(manifest: Manifest, bundle: Path, root: Path) -> list[ollama.Placed]:
    placed = []
    for record in manifest.ollama:
        name = ollama.OllamaName.parse(record.name)
        sources = {d: bundle / mf.OLLAMA_DIR / "blobs" / ("sha256-" + d.split(":", 1)[1]) for d in record.blobs}
        try:
            result = ollama.place(root, name, (bundle / record.manifest).read_bytes(), sources)
        except OSError as error:
            raise BundleError(
                f"The Ollama model {name} could not be placed into {root}: {error.strerror or error} "
                f"({getattr(error, 'filename', '')}). Give Ollama's models folder with --ollama-models DIR (a Linux "
                "service keeps it in /usr/share/ollama/.ollama/models and may need sudo), then run the same command again."
            ) from error
        note = {"written": "placed", "unchanged": "already there",
                "kept": "NOT replaced: Ollama there already has another model of that name"}[result.manifest]
        say(f"Ollama model {name}: {note} ({result.blobs_copied} blobs copied, {result.blobs_present} already there) in {root}")
        placed.append(result)
    return placed


def self_check(prefix: Path, manifest: Manifest) -> None:
    first = next((m for m in manifest.models), None)
    arguments = [str(prefix / "bin" / "oi-local"), "bundle", "self-check"] + ([first.id] if first else [])
    say("self-check: " + (f"starting the server on {first.id} and asking it for one reply" if first
                          else "loading llama.cpp (the bundle has no models)"))
    result = subprocess.run(arguments, env=child_environment())
    if result.returncode != 0:
        raise BundleError(
            f"The self-check failed (exit {result.returncode}; its message is above). oi_local is installed in "
            f"{prefix}, but it does not run here as it is: llama.cpp in this bundle was built with "
            f"{manifest.llama_cpp.get('cmake_args') or 'unknown flags'} ({manifest.llama_cpp.get('backend')}). If the "
            "message names illegal instructions, make a bundle with a portable build (CMAKE_ARGS=-DGGML_NATIVE=OFF "
            "scripts/install.sh on the connected machine). Run the check again with "
            f"{prefix}/bin/oi-local bundle self-check."
        )


def next_steps(prefix: Path, manifest: Manifest, placed: list[ollama.Placed]) -> str:
    bin_dir = prefix / "bin"
    lines = ["", "oi_local is installed. Offline is the default: nothing is downloaded unless OI_LOCAL_OFFLINE=0.", ""]
    if manifest.models:
        model = manifest.models[0]
        provider = "llamafile" if model.format == "llamafile" else "llamacpp"
        lines.append(f"  {bin_dir}/interpreter --local --provider {provider} --model {model.id}")
    else:
        lines.append(f"  {bin_dir}/interpreter --local")
    for result in placed:
        if result.manifest != "kept":
            lines.append(f"  {bin_dir}/interpreter --local --provider ollama --model {result.name}    (with Ollama running)")
    lines += ["", f"To type only `interpreter`, add its folder to PATH: export PATH=\"{bin_dir}:$PATH\"", ""]
    return "\n".join(lines)
