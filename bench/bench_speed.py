"""Decode speed: the estimate before download against real llama.cpp servers on this CPU, and the automatic
choice against the best hand-tuned settings.

Host bandwidth is measured in the same run (machine/speed.measure_host_bandwidth, threads = physical cores,
as llama.cpp's decode threads). Decode speed is measured over HTTP on a real `python -m llama_cpp.server`
(streamed /v1/completions, 32 tokens, the time from the first token to the last, median of 3), started as
oi_local's runner starts it: the fit's n_ctx, the threads and waiting machine/threads.py chooses for the load at
that moment, logits_all off. Models: the test
model and random-weight GGUFs of real shapes written here (models/shapes.py), which llama.cpp runs at the
real model's speed.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _settings_env(spin: bool) -> dict[str, str]:
    import os

    from oi_local.env import llama_server_env

    return {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} if spin else llama_server_env()


def _grid(cores: int, n_ctx: int, *, full: bool) -> dict[tuple, dict]:
    """Hand-tuned settings: 1 thread and every core, spinning or sleeping; with `full` also a 2048 context,
    flash attention and a q8_0 KV cache."""
    grid = {}
    for threads in sorted({1, cores}):
        for wait in ("passive", "spin"):
            common = {"threads": threads, "spin": wait == "spin"}
            grid[(threads, wait, n_ctx, "off", "f16")] = {**common, "n_ctx": n_ctx}
            if full:
                grid[(threads, wait, 2048, "off", "f16")] = {**common, "n_ctx": 2048}
                grid[(threads, wait, n_ctx, "on", "q8_0")] = {**common, "n_ctx": n_ctx, "flash": True, "kv": "q8_0"}
    return grid


def _tuned_row(label: str, auto_key: tuple, rates: dict[tuple, float], ratios: list[float]) -> str:
    measured, best_key = rates[auto_key], max(rates, key=rates.get)
    ratios.append(measured / rates[best_key])
    listed = "; ".join(f"{t} thr {w}, n_ctx {c}, FA {fa}, {kv}: {v:.1f}" for (t, w, c, fa, kv), v in rates.items())
    return (f"| {label} | {auto_key[0]} threads ({auto_key[1]}), n_ctx {auto_key[2]}, FA {auto_key[3]}, {auto_key[4]} KV: "
            f"{measured:.1f} | "
            f"{best_key[0]} threads ({best_key[1]}), n_ctx {best_key[2]}, FA {best_key[3]}, {best_key[4]} KV: "
            f"{rates[best_key]:.1f} | {measured / rates[best_key]:.2f} | {listed} |")


def _sweep(path: Path, folder: Path, settings: dict[tuple, dict], rounds: int = 4,
           tokens: int = 32) -> dict[tuple, float]:
    """Median decode tok/s of each setting; all their servers run side by side and are measured in turns, so a
    change in the machine's load falls on every setting alike."""
    from bench import measure
    from oi_local.serving.runners.llamacpp import tuning_args

    with contextlib.ExitStack() as stack:
        servers = {}
        for index, (key, s) in enumerate(settings.items()):
            extra = tuning_args(s["threads"], flash_attn=bool(s.get("flash")), kv_type=s.get("kv", "f16"))
            servers[key] = stack.enter_context(measure.server(path, s["n_ctx"], folder / f"server-{index}.log",
                                                              extra=tuple(extra), env=_settings_env(s.get("spin", False))))
        rates: dict[tuple, list[float]] = {key: [] for key in settings}
        for _ in range(rounds):
            for key, server in servers.items():
                rates[key].append(measure.decode_rate(server.base, tokens=tokens))
    return {key: statistics.median(values) for key, values in rates.items()}


def run() -> str:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from bench import measure
    from oi_local.machine import hardware, speed
    from oi_local.machine import threads as thread_plans
    from oi_local.models import fit, gguf_info, shapes
    from standins.raw_llama import core_kept_busy

    started = time.monotonic()
    load = measure.load_average()
    hw = hardware.probe(REPO / "bench" / ".work", ask_llama_cpp=False)
    cores = hw.cpu.physical_cores or 1
    bandwidths = [speed.measure_host_bandwidth(cores) for _ in range(3)]
    host = statistics.median(bandwidths)
    bandwidth = speed.Bandwidth(host=host, cores=cores)  # as speed.for_machine: every core decodes when idle
    rows, tuned, ratios, gpu, plans = [], [], [], [], []
    busy, busy_ratios, busy_plans = [], [], []
    with tempfile.TemporaryDirectory(prefix="oi-bench-speed-") as name:
        folder = Path(name)
        m1 = shapes.Shape("1B-shape", n_layer=16, n_embd=2048, n_head=32, n_head_kv=8, n_ff=8192, n_vocab=32000,
                          n_ctx_train=8192)
        models = [
            ("small Q8_0 (random)", shapes.write(folder / "small.gguf", shapes.SMALL, "Q8_0")),
            ("1B-shape Q4_0 (random)", shapes.write(folder / "m1-q4.gguf", m1, "Q4_0")),
            ("1B-shape Q8_0 (random)", shapes.write(folder / "m1-q8.gguf", m1, "Q8_0")),
        ]
        test_model = measure.find_test_model()
        if test_model is not None:
            models.insert(0, ("test model (SmolLM2-135M Q4_1)", test_model))
        for label, path in models:
            info = gguf_info.read(path)
            f = fit.fit_file(path, hw, bandwidth=bandwidth)
            plan = thread_plans.for_this_machine()  # what oi_local's runner starts now
            auto_key = (plan.threads, "passive" if plan.passive else "spin", f.n_ctx, "on" if f.flash_attn else "off",
                        f.kv_type)
            settings = {auto_key: {"threads": plan.threads, "n_ctx": f.n_ctx, "spin": not plan.passive,
                                   "flash": f.flash_attn, "kv": f.kv_type}}
            plans.append(f"{label}: {plan.reason}")
            tune = label in (models[0][0], models[2][0])
            if tune:
                settings.update(_grid(cores, f.n_ctx, full=True))
            rates = _sweep(path, folder, settings)
            measured = rates[auto_key]
            read = info.weights_bytes - info.token_embd_bytes
            rows.append(f"| {label} | {read / 1e6:.0f} MB, {info.block_count} layers | {f.n_ctx} | "
                        f"{f.tokens_per_second:.1f} | {measured:.1f} | {f.tokens_per_second / measured - 1:+.0%} "
                        f"| {measured * read / 1e9:.2f} GB/s = {measured * read / host:.2f} of the measured bandwidth |")
            if tune:
                tuned.append(_tuned_row(label, auto_key, rates, ratios))
                with core_kept_busy():  # the same with another process keeping one core busy
                    plan = thread_plans.for_this_machine()
                    busy_plans.append(f"{label}: {plan.reason}")
                    busy_key = (plan.threads, "passive" if plan.passive else "spin", f.n_ctx,
                                "on" if f.flash_attn else "off", f.kv_type)
                    grid = {busy_key: {"threads": plan.threads, "n_ctx": f.n_ctx, "spin": not plan.passive,
                                       "flash": f.flash_attn, "kv": f.kv_type},
                            **_grid(cores, f.n_ctx, full=False)}
                    busy.append(_tuned_row(label, busy_key, _sweep(path, folder, grid, rounds=2, tokens=16), busy_ratios))
        issue = shapes.write_issue_shapes(folder)
        for name_, key, measured in (("1.5B-shape F16", "1.5b-f16", 607.7), ("8B-shape Q8_0", "8b-q8_0", 211.5),
                                     ("70B-shape F16", "70b-f16", 26.7)):
            path = issue[key]
            f = fit.fit_file(path, measure.h200(), bandwidth=speed.Bandwidth(host=60e9, gpu=speed.gpu_bandwidth("NVIDIA H200")))
            gpu.append(f"| {name_} | all {f.n_gpu_layers} layers, n_ctx {f.n_ctx} | {f.tokens_per_second:.1f} | "
                       f"{measured} | {f.tokens_per_second / measured - 1:+.0%} |")
    return "\n".join([
        "## Decode speed: estimate before download vs real runs; automatic choice vs hand-tuned",
        "",
        f"Host bandwidth measured in this run: {', '.join(f'{b / 1e9:.1f}' for b in bandwidths)} GB/s (median "
        f"{host / 1e9:.1f} GB/s; {cores} threads summing a 256 MiB integer array). Estimate: `fit.fit_file(model, hw, "
        "bandwidth=...).tokens_per_second` = 1 / (bytes read per token / min(bandwidth x HOST_EFFICIENCY "
        f"{speed.HOST_EFFICIENCY}, {bandwidth.cores} decode threads x {speed.PER_CORE_BYTES_PER_SECOND / 1e9:.1f} GB/s) + layers x "
        f"{speed.PER_LAYER_SECONDS['host'] * 1e6:.0f} us + {speed.PER_TOKEN_HOST * 1e3:.0f} ms), a host rate of "
        f"{bandwidth.host_rate / 1e9:.1f} GB/s here. Measured: "
        "`python -m llama_cpp.server --n_ctx <fit> --n_threads <plan> --n_threads_batch <plan> --logits_all False` with "
        "OMP_WAIT_POLICY=PASSIVE only when the plan says so (as oi_local's runner starts it: machine/threads.py), a "
        "32-token completion less a 1-token one of the same prompt; every setting of "
        "a model runs as its own server side by side with the others, measured in turns, 4 rounds, median.",
        "",
        "| model | bytes read per token | n_ctx | estimated tok/s | measured tok/s | error | llama.cpp's effective read rate |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "### Automatic choice vs hand-tuned best (CPU: threads, how they wait, context, flash attention, KV type)",
        "",
        "`spin`: OpenMP's default (waiting threads spin); `passive`: OMP_WAIT_POLICY=PASSIVE. oi_local's choice at each "
        "model's start (the cores other processes kept busy then): " + "; ".join(plans) + ".",
        "",
        "| model | automatic (what oi_local starts) tok/s | best hand-tuned tok/s | auto / best (goal >= 0.95) | every setting tried (tok/s) |",
        "|---|---|---|---|---|",
        *tuned,
        "",
        f"auto / best: {', '.join(f'{r:.2f}' for r in ratios)}.",
        "",
        "#### The same with another process keeping one core busy (`python -c 'while True: pass'`; 2 rounds of 16 "
        "tokens: spinning threads crawl)",
        "",
        "oi_local's choice then: " + "; ".join(busy_plans) + ".",
        "",
        "| model | automatic (what oi_local starts) tok/s | best hand-tuned tok/s | auto / best (goal >= 0.95) | every setting tried (tok/s) |",
        "|---|---|---|---|---|",
        *busy,
        "",
        f"auto / best with a core kept busy: {', '.join(f'{r:.2f}' for r in busy_ratios)}.",
        "",
        "### GPU: the issue's measured decode speeds on a real NVIDIA H200 (not measured here) vs the estimate",
        "",
        "Measured there by the issue (`oi-local serve`, all layers on the GPU); estimated here for sparse files of the "
        f"same shapes with the H200's published 4.8 TB/s x GPU_EFFICIENCY {speed.GPU_EFFICIENCY} and "
        f"{speed.PER_LAYER_SECONDS['gpu'] * 1e6:.0f} us per layer. The issue also measured oi-local serve's automatic "
        "choice against the raw server with `--n_gpu_layers -1`: 607.7 vs 611.7 tok/s (0.993).",
        "",
        "| model | placement | estimated tok/s | measured on the H200 (issue) | error |",
        "|---|---|---|---|---|",
        *gpu,
        "",
        f"Total time {time.monotonic() - started:.0f} s; 1-min load average {load:.1f} at the start, "
        f"{measure.load_average():.1f} at the end (this 2-core machine is shared: other work slows llama.cpp's "
        "threads, which wait for each other at every step).",
    ])


if __name__ == "__main__":
    print(run())
