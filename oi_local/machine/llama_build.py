"""Can the installed llama.cpp (llama-cpp-python) use a GPU? llama_cpp's own answer decides.

`llama_cpp.llama_supports_gpu_offload()` is true for a CUDA, HIP, Metal or Vulkan build. Importing llama_cpp
loads its shared libraries (a second or more; never on the start-up path), so the question is asked in a
child process, once per installed build: the answer is cached in the state folder under a key made of the
files in llama_cpp's lib/ folder (names, sizes, modification times), so a rebuild (`scripts/install.sh
--gpu`) is noticed at once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from oi_local.env import TIMEOUTS

REBUILD_HINT = "rebuild with `scripts/install.sh --gpu`"
_ASK = (
    "import json, llama_cpp\n"
    "print(json.dumps({'gpu_offload': bool(llama_cpp.llama_supports_gpu_offload()),"
    " 'version': getattr(llama_cpp, '__version__', None)}))"
)


@dataclass(frozen=True)
class LlamaBuild:
    installed: bool
    gpu_offload: bool | None  # None: not known (not installed, or the check failed)
    version: str | None = None
    problem: str | None = None  # why it is not known


def library_folder() -> Path | None:
    """llama_cpp's lib/ folder, found without importing the package."""
    try:
        spec = importlib.util.find_spec("llama_cpp")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "lib"


def build_key(lib: Path) -> str:
    """Names, sizes and modification times of the build's shared libraries: a rebuild changes it."""
    parts = [str(lib.resolve())]
    for path in sorted(lib.glob("*")):
        try:
            stat = path.stat()
        except OSError:
            continue
        parts.append(f"{path.name}:{stat.st_size}:{int(stat.st_mtime)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def ask(python: str = sys.executable, timeout: float | None = None) -> LlamaBuild:
    """Ask llama_cpp in a child process (never raises)."""
    try:
        done = subprocess.run([python, "-c", _ASK], capture_output=True, text=True,
                              timeout=timeout or TIMEOUTS.llama_build_check)
    except subprocess.TimeoutExpired:
        return LlamaBuild(True, None, problem="importing llama_cpp did not finish in time")
    except OSError as error:
        return LlamaBuild(True, None, problem=f"could not run {python}: {error.strerror or error}")
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return LlamaBuild(True, None, problem=f"llama_cpp cannot be loaded: {lines[-1] if lines else 'no output'}")
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return LlamaBuild(True, None, problem="llama_cpp gave no answer")
    return LlamaBuild(True, bool(answer["gpu_offload"]), version=answer.get("version"))


def check(state_dir: Path | None, *, lib: Path | None = None, python: str = sys.executable) -> LlamaBuild:
    """The installed build's answer, from the cache when this build was asked before."""
    lib = library_folder() if lib is None else lib
    if lib is None or not lib.is_dir():
        return LlamaBuild(False, None, problem="llama-cpp-python is not installed")
    cache = Path(state_dir) / "llama_build" / f"{build_key(lib)}.json" if state_dir is not None else None
    if cache is not None:
        try:
            data = json.loads(cache.read_text())
            return LlamaBuild(True, data["gpu_offload"], version=data.get("version"))
        except (OSError, ValueError, KeyError):
            pass
    answer = ask(python)
    if cache is not None and answer.gpu_offload is not None:
        from oi_local.files import FileWriteError, write_json_atomic

        try:
            write_json_atomic(cache, {"gpu_offload": answer.gpu_offload, "version": answer.version, "lib": str(lib)})
        except FileWriteError:
            pass  # only a cache: asked again next time
    return answer
