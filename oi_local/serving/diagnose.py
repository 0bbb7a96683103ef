"""Why a server stopped: its exit status and the end of its log, read into a known cause and what to do."""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path

from oi_local.errors import OiLocalError

REBUILD_HINT = (
    'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --force-reinstall --no-cache-dir --no-deps llama-cpp-python'
)
RUNNER_NAMES = {"llamacpp": "llama.cpp server", "llamafile": "llamafile server"}


class ServerError(OiLocalError):
    """A server did not start, or stopped while in use. `kind` names the known cause ("sigill", "oom",
    "bad_model", "port_taken", "shared_library", "binfmt", "disk_full", "timeout", "crashed",
    "not_answering", "exec_failed", "stopped")."""

    def __init__(self, message: str, *, kind: str = "crashed", log_path: Path | None = None,
                 returncode: int | None = None, log_tail: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.kind = kind
        self.log_path = log_path
        self.returncode = returncode
        self.log_tail = list(log_tail)


def runner_name(runner: str) -> str:
    return RUNNER_NAMES.get(runner, runner)


def signal_name(returncode: int | None) -> str | None:
    if returncode is None or returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def disk_is_full(path: Path | None, *, below: int = 64 * 1024) -> bool:
    """The filesystem holding `path` has (almost) no space left."""
    if path is None:
        return False
    import shutil

    try:
        return shutil.disk_usage(Path(path).parent).free < below
    except OSError:
        return False


def diagnose(returncode: int | None, lines: Sequence[str], *, model_path: Path | None = None,
             port: int | None = None, log_path: Path | None = None) -> tuple[str, str]:
    """(kind, what to do) for a server that exited, from its exit status and the end of its log."""
    text = "\n".join(lines).lower()
    signame = signal_name(returncode)
    if signame == "SIGILL" or "illegal instruction" in text or returncode == 132:
        return "sigill", (
            "It died with SIGILL (an illegal CPU instruction): this llama.cpp build uses CPU instructions this "
            f"machine does not allow. Rebuild it for a generic CPU: {REBUILD_HINT}"
        )
    if "run-detectors" in text and "unable to find an interpreter" in text:
        return "binfmt", (
            "The system's binfmt handler (run-detectors) intercepted the executable. Run it through `sh`, or "
            "register the APE loader with binfmt_misc."
        )
    if ("error while loading shared libraries" in text or "cannot open shared object file" in text
            or "library not loaded" in text or ("oserror" in text and ".so" in text)):
        return "shared_library", (
            "A shared library it needs is missing (see the log lines below). Install the missing library or "
            f"reinstall llama-cpp-python: {REBUILD_HINT}"
        )
    if any(s in text for s in ("address already in use", "error while attempting to bind", "only one usage of each socket")):
        return "port_taken", f"Port {port} was taken by another program before the server could listen on it."
    if "no space left on device" in text:
        return "disk_full", _disk_full_advice(log_path)
    if any(s in text for s in ("out of memory", "failed to allocate", "bad_alloc", "memoryerror",
                               "cannot allocate memory", "unable to allocate")) or (
            signame == "SIGKILL" and "killed" in text):
        return "oom", (
            "It ran out of memory. Choose a smaller model or quantization, a smaller context window "
            "(-c 2048), or fewer GPU layers (-ngl 0), and close other programs."
        )
    if any(s in text for s in ("model path does not exist", "no such file", "failed to load model",
                               "invalid magic", "not a gguf", "gguf_init", "failed to read", "unknown model architecture")):
        where = f" ({model_path})" if model_path else ""
        return "bad_model", (
            f"It could not load the model file{where}: it is missing, not a GGUF model, truncated, or of an "
            "architecture this llama.cpp build does not know. Download it again (oi-local models download ID) "
            "or update llama-cpp-python."
        )
    if "no module named" in text and "llama_cpp" in text:
        return "missing_package", "llama-cpp-python is not installed in this Python: pip install 'llama-cpp-python[server]'."
    if disk_is_full(log_path):  # nothing in the log says why: perhaps because nothing more could be written
        return "disk_full", _disk_full_advice(log_path)
    if signame:
        return "crashed", f"It was stopped by {signame}."
    return "crashed", f"It exited with status {returncode}."


def _disk_full_advice(log_path: Path | None) -> str:
    where = log_path.parent if log_path else "the logs folder"
    return (f"The disk that holds its log ({where}) is full. Free some disk space there (or set OI_LOCAL_HOME "
            "to a folder on another disk) and try again.")
