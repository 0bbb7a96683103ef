"""Stand-ins for a machine's own programs (nvidia-smi, nvcc, rocminfo, hipconfig, uname, lspci).

No machine the tests run on has an NVIDIA, AMD or Apple GPU, so these print the programs' real outputs
(tests/fixtures/hardware: the H200 ones captured on a real H200 machine) from a folder put first on PATH.
`isolated_path` builds a PATH that holds only the ordinary tools a shell script needs, so the machine's own
GPU programs (this one has a CUDA toolkit in /usr/local/bin) cannot leak into a test.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

HARDWARE = Path(__file__).parent / "fixtures" / "hardware"
BASE_TOOLS = (
    "bash", "sh", "env", "sed", "grep", "tr", "sort", "paste", "head", "tail", "cut", "sha256sum", "cat", "ls",
    "mktemp", "nproc", "dirname", "rm", "mv", "mkdir", "awk", "uname", "python3", "printf", "date", "cp", "touch",
)


def isolated_path(folder: Path, *, without: tuple[str, ...] = ()) -> Path:
    """A folder of links to the ordinary tools (not `without`): the whole PATH of a test's script."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in BASE_TOOLS:
        if name in without:
            continue
        found = shutil.which(name)
        if found and not (folder / name).exists():
            (folder / name).symlink_to(found)
    return folder


def stand_in(folder: Path, name: str, script: str) -> Path:
    """An executable `name` in `folder` running the sh `script`."""
    path = folder / name
    if path.is_symlink() or path.exists():
        path.unlink()
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


def _cat(name: str) -> str:
    return f"cat {shlex.quote(str(HARDWARE / name))}"


def nvidia_smi(folder: Path, *, query: str = "nvidia_h200_query.csv", plain: str = "nvidia_h200_smi.txt",
               compute_cap: str | None = "nvidia_h200_compute_cap.csv") -> Path:
    """nvidia-smi answering the queries oi_local and install.sh make, from fixture files."""
    cap = _cat(compute_cap) if compute_cap else 'echo "Field \\"compute_cap\\" is not a valid field to query."; exit 2'
    return stand_in(folder, "nvidia-smi", f"""case "$*" in
  "") {_cat(plain)} ;;
  *--query-gpu=compute_cap*) {cap} ;;
  *--query-gpu=name,memory.total,memory.free,driver_version*) {_cat(query)} ;;
  "--query-gpu=name --format=csv,noheader") {_cat(query)} | cut -d, -f1 ;;
  *) echo "stand-in nvidia-smi: no recorded output for: $*" >&2; exit 2 ;;
esac
""")


def compute_caps(folder: Path, *caps: str) -> Path:
    """nvidia-smi on a machine with GPUs of these compute capabilities (each line as nvidia-smi prints it)."""
    data = folder / "compute_caps.csv"
    data.write_text("".join(f"{c}\n" for c in caps))
    names = folder / "names.csv"
    names.write_text("".join(f"NVIDIA GPU {i}, 24564, 23997, 550.54.14\n" for i in range(len(caps))))
    return stand_in(folder, "nvidia-smi", f"""case "$*" in
  *--query-gpu=compute_cap*) cat {shlex.quote(str(data))} ;;
  "--query-gpu=name --format=csv,noheader") cut -d, -f1 {shlex.quote(str(names))} ;;
  *--query-gpu=name,memory.total*) cat {shlex.quote(str(names))} ;;
  *) exit 2 ;;
esac
""")


def nvcc(folder: Path, version: str = "nvcc_13_0_version.txt") -> Path:
    return stand_in(folder, "nvcc", f'[ "$1" = --version ] && {_cat(version)}\n')


def rocminfo(folder: Path, fixture: str = "rocminfo_rx7900xtx.txt") -> Path:
    return stand_in(folder, "rocminfo", _cat(fixture) + "\n")


def hipconfig(folder: Path, rocm: Path) -> Path:
    """hipconfig as ROCm 6.2 answers: -l the LLVM bin folder, -R the ROCm root, --version the HIP version."""
    return stand_in(folder, "hipconfig", f"""case "$1" in
  -l) echo {shlex.quote(str(rocm / "llvm" / "bin"))} ;;
  -R) echo {shlex.quote(str(rocm))} ;;
  --version) echo 6.2.41133-dd7f95766 ;;
esac
""")


def uname(folder: Path, system: str, machine: str) -> Path:
    return stand_in(folder, "uname", f"""case "$1" in
  -s) echo {system} ;;
  -m) echo {machine} ;;
  *) echo {system} ;;
esac
""")


def lspci(folder: Path, fixture: str) -> Path:
    return stand_in(folder, "lspci", _cat(fixture) + "\n")
