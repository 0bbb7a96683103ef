"""The offline bundle: how long `oi-local bundle create` takes, how much the bundle adds to the files it carries,
gzip against zstd, and the offline install (install.sh, including its self-check) against the online
`scripts/install.sh` of a new user (a clean clone, the wheel caches cold, so llama-cpp-python really builds).

All in one run, on this machine:
1. create, cold: `oi-local bundle create --model smollm2-135m` with XDG_CACHE_HOME pointing at an empty folder
   (pip's cache and the bundle's wheel cache empty: every wheel is downloaded). Then warm: the same again.
2. size: the bundle file against models + wheels (the bytes it must carry); overhead = the rest (tar headers,
   manifest, installer). Goal under 1 %.
3. compression: --compress gzip (this Python's zlib, level 6), and zstd where this Python offers it (Python 3.14
   or `zstandard`); where it does not, the zstd program (-3 -T0) on the plain tar as a reference figure.
4. offline install: tar -xf, then install.sh into a fresh HOME inside a network namespace with only `lo`
   (`unshare -n`, where allowed), the self-check included. Goal under 60 s, nothing compiled.
5. online install: a clean clone of this checkout (git clone), `scripts/install.sh` with XDG_CACHE_HOME empty:
   pip downloads everything and builds llama-cpp-python from source. Ratio = online / offline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OI_LOCAL = ROOT / ".venv" / "bin" / "oi-local"
MODEL = "smollm2-135m"


def _run(command: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
         timeout: float = 3600) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {(result.stderr or result.stdout)[-1500:]}")
    return seconds, result


def _unshare_allowed() -> bool:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    return subprocess.run(["unshare", "-n", "--", "sh", "-c", "ip link set lo up"], capture_output=True).returncode == 0


def _create(home: Path, cache: Path, output: Path, *extra: str) -> tuple[float, dict]:
    env = dict(os.environ, OI_LOCAL_HOME=str(home), XDG_CACHE_HOME=str(cache))
    seconds, result = _run([str(OI_LOCAL), "bundle", "create", "--model", MODEL, "-o", str(output), "--json", *extra], env=env)
    return seconds, json.loads(result.stdout)


def _install_offline(archive: Path, work: Path) -> tuple[float, float, str]:
    """(seconds from tar -xf to the printed command, the self-check's own seconds, where it ran)."""
    home = work / "home"
    home.mkdir(parents=True)
    started = time.perf_counter()
    subprocess.run(["tar", "-xf", str(archive)], cwd=work, check=True)
    command = [str(work / "oi_local-bundle" / "install.sh")]
    namespace = _unshare_allowed()
    if namespace:
        command = ["unshare", "-n", "--", "sh", "-c", f"ip link set lo up && exec '{command[0]}'"]
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
           "PYTHON": getattr(sys, "_base_executable", None) or shutil.which("python3")}
    _, result = _run(command, env=env)
    seconds = time.perf_counter() - started
    check = re.search(r"Self-check passed: .*\(([\d.]+) s;", result.stdout)
    return seconds, float(check.group(1)) if check else float("nan"), "a network namespace with only lo" if namespace else "this machine's network (unshare not allowed)"


def _install_online(work: Path) -> float:
    clone = work / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    cache = work / "cache"
    cache.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CMAKE_ARGS", "VIRTUAL_ENV")}
    env["XDG_CACHE_HOME"] = str(cache)  # pip's cache and oi_local's wheel cache: both empty
    seconds, _ = _run(["scripts/install.sh"], env=env, cwd=clone, timeout=7200)
    return seconds


def _zstd_cli(archive: Path) -> tuple[float, int] | None:
    if not shutil.which("zstd"):
        return None
    out = archive.with_name(archive.name + ".zst")
    seconds, _ = _run(["zstd", "-q", "-3", "-T0", "-f", str(archive), "-o", str(out)])
    size = out.stat().st_size
    out.unlink()
    return seconds, size


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}"


def run() -> str:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-bundle-") as folder:
        work = Path(folder)
        home = work / "source"
        _run([str(OI_LOCAL), "models", "download", MODEL], env=dict(os.environ, OI_LOCAL_HOME=str(home)))
        cache = work / "xdg-cache"
        cache.mkdir()
        cold_s, cold = _create(home, cache, work / "cold.tar")
        warm_s, plain = _create(home, cache, work / "b.tar")
        archive = Path(plain["path"])
        carried = plain["model_bytes"] + plain["wheel_bytes"]
        overhead = plain["bytes"] - carried
        gzip_s, gz = _create(home, cache, work / "g.tar", "--compress", "gzip")
        from oi_local.bundle.archive import available_compressions

        zstd_row = None
        if "zstd" in available_compressions():
            zstd_s, zst = _create(home, cache, work / "z.tar", "--compress", "zstd")
            zstd_row = ("--compress zstd (this Python)", zstd_s, zst["bytes"])
        else:
            measured = _zstd_cli(archive)
            if measured:
                zstd_row = ("zstd -3 -T0 program on the plain tar (reference: this Python has no zstd)", *measured)
        offline_s, check_s, where = _install_offline(archive, work / "offline")
        online_s = _install_online(work / "online")

    lines = [
        "## Offline bundle (bench/bench_bundle.py)",
        "",
        "Bundle: `oi-local bundle create --model smollm2-135m` (the test model, SmolLM2-135M Q4_1, and every wheel of",
        f"oi_local: {plain['wheels']} wheels, llama-cpp-python {plain['llama_cpp']['version']} built "
        f"`{plain['llama_cpp']['cmake_args']}`). Offline install: `tar -xf` + `oi_local-bundle/install.sh` into a fresh",
        f"HOME, in {where}, self-check included. Online baseline: a clean `git clone` of this checkout and",
        "`scripts/install.sh` with XDG_CACHE_HOME empty (pip downloads everything, llama-cpp-python builds from source).",
        "",
        "| step | seconds | bytes (MB) | note |",
        "|---|---|---|---|",
        f"| bundle create, wheel caches cold | {cold_s:.1f} | {_mb(cold['bytes'])} | {cold['wheels'] - 2} wheels downloaded, "
        "oi_local's built, llama-cpp-python's from install.sh's cache |",
        f"| bundle create, warm | {warm_s:.1f} | {_mb(plain['bytes'])} | plain tar |",
        f"| --compress gzip | {gzip_s:.1f} | {_mb(gz['bytes'])} | {100 * gz['bytes'] / plain['bytes']:.1f} % of the plain tar |",
    ]
    if zstd_row:
        lines.append(f"| {zstd_row[0]} | {zstd_row[1]:.1f} | {_mb(zstd_row[2])} | {100 * zstd_row[2] / plain['bytes']:.1f} % of the plain tar |")
    ratio = online_s / offline_s
    lines += [
        f"| offline install (install.sh, self-check {check_s:.1f} s) | {offline_s:.1f} | | goal < 60 s, no compile |",
        f"| online scripts/install.sh, caches cold | {online_s:.1f} | | ratio online / offline = {ratio:.1f} |",
        "",
        f"Size: models {_mb(plain['model_bytes'])} MB + wheels {_mb(plain['wheel_bytes'])} MB = {_mb(carried)} MB carried; "
        f"the bundle is {_mb(plain['bytes'])} MB, overhead {overhead / 1e3:.0f} kB = "
        f"{100 * overhead / carried:.3f} % (goal < 1 %: tar headers, manifest.json, the installer, requirements.txt).",
        f"Load average of this machine ({os.cpu_count()} cores): {load_before:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end (other programs share it: both installs slow down alike).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
