"""The GPU device check (run by bench/gpu_check.sh after it built the CUDA wheel): on a machine with an NVIDIA GPU,

1. hardware: what the probe sees, and whether the installed llama.cpp build can offload (llama_cpp's answer);
2. fit vs allocation: for random-weight GGUFs of real shapes (1.5B-shape F16, 8B-shape Q8_0), the fit's choice
   started as oi_local's runner starts it; llama.cpp's GPU buffers from its log and nvidia-smi's used memory
   against the estimate;
3. auto vs `--n_gpu_layers -1`: decode tok/s of the fit's choice and of the raw server with every layer;
4. partial offload: the 8B shape under a VRAM budget imposed through the fit (half of what it needs); the
   layers it chose, the GPU memory really used, and tok/s against the estimate;
5. (when time is left) the 70B shape as a sparse file: all 81 layers at the fit's context, as in the issue.

Results go to OUT/gpu_check.json and OUT/gpu_check.md (a section for bench/RESULTS.md). `--cpu-selftest` runs
the same steps with small shapes on a machine without a GPU (the CPU-safe parts, checked on the build machine).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import measure  # noqa: E402
from oi_local.machine import hardware  # noqa: E402
from oi_local.models import fit, gguf_info, memory, shapes  # noqa: E402

MIB = 1024 * 1024
GB = 1000**3


def gpu_used() -> int | None:
    """nvidia-smi's used memory of GPU 0, bytes (None without nvidia-smi)."""
    if shutil.which("nvidia-smi") is None:
        return None
    done = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                          capture_output=True, text=True, timeout=30)
    return int(done.stdout.split()[0]) * MIB if done.returncode == 0 and done.stdout.strip() else None


def run_placement(path: Path, n_ctx: int, layers: int, folder: Path, threads: int, *, tokens: int = 64) -> dict:
    """A server with this placement: its logged buffers, the GPU memory used while it runs, decode tok/s."""
    before = gpu_used()
    started = time.monotonic()
    extra = ("--n_gpu_layers", str(layers), "--n_threads", str(threads))
    with measure.server(path, n_ctx, folder / "server.log", extra=extra) as s:
        load_seconds = time.monotonic() - started
        measure.decode_rate(s.base, tokens=8)
        rate = max(measure.decode_rate(s.base, tokens=tokens) for _ in range(2))
        used = gpu_used()
        rss = psutil.Process(s.process.pid).memory_info().rss  # the host side: calibrates fit.GPU_HOST_RUNTIME
        found = memory.parse_log(s.log())
    return {
        "n_ctx": n_ctx, "n_gpu_layers": layers, "load_seconds": round(load_seconds, 1), "tokens_per_second": rate,
        "logged_gpu_bytes": memory.gpu_bytes_in_log(found), "logged_host_bytes": memory.host_bytes_in_log(found),
        "logged": {f"{d} {k}": n for (d, k), n in found.items()},
        "gpu_used_bytes": None if used is None or before is None else used - before,
        "server_rss_bytes": rss,
    }


def estimate(path: Path, n_ctx: int, layers: int) -> memory.Allocation:
    info = gguf_info.read(path)
    return memory.allocate(info.to_architecture(), memory.layout_from_header(info), n_ctx, layers,
                           vocab=info.vocab_size, n_ff=info.feed_forward_length)


def check(out: Path, *, cpu_selftest: bool, seconds: float, with_70b: bool) -> dict:
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="oi-gpu-check-"))
    state = work / "state"
    hw = hardware.probe(work, state_dir=state)
    threads = hw.cpu.physical_cores or 1
    bandwidth = fit.machine_bandwidth(hw, state)
    result: dict = {"hardware": hardware.to_dict(hw), "bandwidth": dataclasses.asdict(bandwidth), "cases": [],
                    "skipped": []}
    if not cpu_selftest and hw.llama_cpp_gpu is not True:
        result["error"] = f"the installed llama.cpp build cannot offload (llama_cpp_gpu={hw.llama_cpp_gpu})"
        return result
    if cpu_selftest:
        cases = [("tiny F16", shapes.TINY, "F16"), ("small Q8_0", shapes.SMALL, "Q8_0")]
    else:
        cases = [("1.5B-shape F16", shapes.LLAMA_1_5B, "F16"), ("8B-shape Q8_0", shapes.LLAMA_8B, "Q8_0")]
    files = {name: shapes.write(work / f"{shape.name}-{kind}.gguf", shape, kind) for name, shape, kind in cases}
    for name, path in files.items():
        f = fit.fit_file(path, hw, bandwidth=bandwidth)
        auto = run_placement(path, f.n_ctx, f.n_gpu_layers, work, threads)
        a = estimate(path, f.n_ctx, f.n_gpu_layers)
        full = run_placement(path, f.n_ctx, -1, work, threads) if not cpu_selftest else None
        result["cases"].append({
            "name": name, "kind": "auto vs --n_gpu_layers -1", "fit": {"n_ctx": f.n_ctx, "n_gpu_layers": f.n_gpu_layers,
            "gpu_bytes": f.gpu_bytes, "host_bytes": f.host_bytes, "tokens_per_second": f.tokens_per_second,
            "reason": f.reason}, "estimated_gpu_alloc": a.gpu, "estimated_host_alloc": a.host, "auto": auto,
            "all_layers": full,
        })
    partial_name, partial_path = list(files.items())[-1]
    whole = fit.fit_file(partial_path, hw, bandwidth=bandwidth)
    if hw.gpus and whole.gpu_bytes:
        budget = whole.gpu_bytes // 2
        limited = dataclasses.replace(hw, gpus=(dataclasses.replace(hw.gpus[0], free_vram_bytes=budget),))
        f = fit.fit_file(partial_path, limited, bandwidth=bandwidth)
        run = run_placement(partial_path, f.n_ctx, f.n_gpu_layers, work, threads)
        a = estimate(partial_path, f.n_ctx, f.n_gpu_layers)
        result["cases"].append({
            "name": partial_name, "kind": f"partial offload under an imposed budget of {budget / GB:.2f} GB",
            "budget_bytes": budget, "fit": {"n_ctx": f.n_ctx, "n_gpu_layers": f.n_gpu_layers, "gpu_bytes": f.gpu_bytes,
            "host_bytes": f.host_bytes, "tokens_per_second": f.tokens_per_second, "reason": f.reason},
            "estimated_gpu_alloc": a.gpu, "estimated_host_alloc": a.host, "auto": run,
        })
    else:
        result["skipped"].append("partial offload: no GPU to impose a budget on")
    if with_70b and not cpu_selftest:
        if time.monotonic() - started < seconds - 240:
            path = shapes.write(work / "l70.gguf", shapes.LLAMA_70B, "F16", sparse=True)
            f = fit.fit_file(path, hw, bandwidth=bandwidth)
            run = run_placement(path, f.n_ctx, f.n_gpu_layers, work, threads, tokens=32)
            a = estimate(path, f.n_ctx, f.n_gpu_layers)
            result["cases"].append({"name": "70B-shape F16 (sparse: zero weights)", "kind": "the fit's choice",
                                    "fit": {"n_ctx": f.n_ctx, "n_gpu_layers": f.n_gpu_layers, "gpu_bytes": f.gpu_bytes,
                                            "host_bytes": f.host_bytes,
                                            "tokens_per_second": f.tokens_per_second, "reason": f.reason},
                                    "estimated_gpu_alloc": a.gpu, "estimated_host_alloc": a.host, "auto": run})
        else:
            result["skipped"].append("70B shape: not enough time left")
    result["seconds"] = round(time.monotonic() - started, 1)
    shutil.rmtree(work, ignore_errors=True)
    return result


def report(result: dict, build: dict | None) -> str:
    lines = ["## GPU device check (bench/gpu_check.sh)", ""]
    gpus = ", ".join(g["name"] for g in result["hardware"]["gpus"]) or "none"
    lines.append(f"Machine: {gpus}; llama.cpp build can offload: {result['hardware']['llama_cpp_gpu']}; "
                 f"host bandwidth measured {result['bandwidth']['host'] / 1e9:.1f} GB/s.")
    if build:
        lines.append(f"CUDA wheel build: {build.get('build_seconds')} s with {build.get('jobs')} jobs, "
                     f"CMAKE_ARGS=\"{build.get('cmake_args')}\" ({build.get('why')}).")
    if "error" in result:
        return "\n".join(lines + ["", f"STOPPED: {result['error']}."])
    lines += ["", "| model | what | n_ctx, GPU layers | GPU buffers logged / estimated | nvidia-smi used / fit's GPU need "
              "| host: server RSS / fit's RAM need | tok/s measured / estimated | tok/s with --n_gpu_layers -1 | auto / all |",
              "|---|---|---|---|---|---|---|---|---|"]
    for case in result["cases"]:
        auto, f = case["auto"], case["fit"]
        logged, est = auto["logged_gpu_bytes"], case["estimated_gpu_alloc"]
        err = f" ({est / logged - 1:+.1%})" if logged else ""
        used = auto["gpu_used_bytes"]
        used_text = f"{used / GB:.2f} / {f['gpu_bytes'] / GB:.2f} GB" if used is not None else "n/a"
        est_rate = f"{f['tokens_per_second']:.1f}" if f.get("tokens_per_second") else "n/a"
        full = case.get("all_layers")
        full_rate = f"{full['tokens_per_second']:.1f}" if full else "n/a"
        ratio = f"{auto['tokens_per_second'] / full['tokens_per_second']:.3f}" if full else "n/a"
        lines.append(f"| {case['name']} | {case['kind']} | {auto['n_ctx']}, {auto['n_gpu_layers']} "
                     f"| {logged / GB:.2f} / {est / GB:.2f} GB{err} | {used_text} "
                     f"| {auto['server_rss_bytes'] / GB:.2f} / {f.get('host_bytes', 0) / GB:.2f} GB "
                     f"| {auto['tokens_per_second']:.1f} / {est_rate} | {full_rate} | {ratio} |")
    for item in result["skipped"]:
        lines.append(f"\nSkipped: {item}.")
    lines.append(f"\nChecks took {result['seconds']} s.")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--build-json", type=Path, help="build.json of the wheel bench/gpu_check.sh built")
    parser.add_argument("--seconds", type=float, default=380, help="time these checks may take")
    parser.add_argument("--no-70b", action="store_true", help="skip the 70B shape")
    parser.add_argument("--cpu-selftest", action="store_true", help="small shapes, no GPU needed")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    build = json.loads(args.build_json.read_text()) if args.build_json and args.build_json.exists() else None
    result = check(args.out, cpu_selftest=args.cpu_selftest, seconds=args.seconds, with_70b=not args.no_70b)
    result["build"] = build
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=1, default=str))
    text = report(result, build)
    (args.out / "gpu_check.md").write_text(text + "\n")
    print(text)
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
