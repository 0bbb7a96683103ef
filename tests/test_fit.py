"""fit: the memory model on machines described by Hardware values, and against a real llama.cpp server."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from oi_local.machine.hardware import CPU, GPU, Hardware
from oi_local.models import catalog, fit
from oi_local.models.catalog import Architecture

GB = 1000**3
GIB = 1024**3
MIB = 1024**2

LLAMA_8B = Architecture(block_count=32, kv_heads=8, head_dim=128, context_length=131072, embedding_length=4096,
                        head_count=32, vocab_size=128256)
LLAMA_8B_WEIGHTS = 4_920_000_000


def machine(ram: float, *gpus: GPU) -> Hardware:
    """A machine with `ram` GB available (of 2x that in total)."""
    return Hardware(
        total_ram_bytes=int(2 * ram * GB), available_ram_bytes=int(ram * GB), free_disk_bytes=500 * GB,
        disk_path=Path("/"), cpu=CPU("test cpu", 8, 16, frozenset({"avx2"})), gpus=tuple(gpus), os="Linux",
    )


def usable(n_bytes: float) -> Hardware:
    """A machine on which the fit may use exactly n_bytes of RAM (it keeps 0.5 GB back for the system)."""
    return replace(machine(64), available_ram_bytes=int(n_bytes) + GB // 2)


def nvidia(free_gb: float, name: str = "RTX") -> GPU:
    return GPU("nvidia", name, "cuda", int(free_gb * GB) + 500 * MIB, int(free_gb * GB))


def test_kv_cache_formula_matches_llama_cpp():
    smollm = Architecture(block_count=30, kv_heads=3, head_dim=64, context_length=8192)
    # llama.cpp reports "CPU KV buffer size = 180.00 MiB" for the test model at n_ctx 8192
    assert fit.kv_cache_bytes(smollm, 8192) == 180 * MIB
    assert fit.kv_cache_bytes(LLAMA_8B, 8192) == 2 * 32 * 8192 * 8 * 128 * 2  # 1 GiB: 128 KiB per token
    assert fit.kv_cache_bytes(LLAMA_8B, 8192, kv_bytes_per_element=1) == 512 * MIB


def test_plenty_of_ram_gives_the_capped_trained_context_on_cpu():
    f = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, machine(64))
    assert f.fits and f.n_ctx == 32768 and f.n_gpu_layers == 0 and f.device == "cpu"
    assert f.total_bytes == (f.weights_bytes + f.kv_cache_bytes + f.compute_bytes + f.overhead_bytes
                             + f.margin_bytes)
    assert f.kv_cache_bytes == 4 * GIB
    assert f.max_tokens < f.n_ctx
    assert "fits in RAM" in f.reason and "GB" in f.reason
    assert fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, machine(64), max_ctx=131072).n_ctx == 131072


def test_context_shrinks_to_what_fits_and_below_the_agents_minimum_only_when_nothing_else_does():
    at = {c: fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, machine(64), n_ctx=c).total_bytes
          for c in (1024, 2048, 4096, 8192, 16384, 32768)}
    assert at[1024] < at[2048] < at[4096] < at[8192] < at[16384] < at[32768]
    f = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, usable((at[8192] + at[16384]) / 2))
    assert f.fits and f.n_ctx == 8192
    f = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, usable((at[2048] + at[4096]) / 2))
    assert f.fits and f.n_ctx == 2048 and "only with a 2048-token context" in f.reason  # under the agent's 8192
    f = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, usable((at[1024] + at[2048]) / 2))
    assert f.fits and f.n_ctx == 1024 and "only with a 1024-token context" in f.reason
    f = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, machine(2))
    # what it would need at the agent's minimum context, the smallest a code agent works with
    assert not f.fits and f.n_ctx == fit.AGENT_MIN_CONTEXT
    assert f.reason.startswith("needs ") and "free RAM" in f.reason
    assert f.available_bytes is not None and f.total_bytes > f.available_bytes


def test_short_trained_context_is_used_as_is():
    tiny = Architecture(block_count=22, kv_heads=4, head_dim=64, context_length=2048, embedding_length=2048, head_count=32)
    assert fit.fit_model(tiny, 700 * MIB, machine(16)).n_ctx == 2048
    phi3_4k = Architecture(block_count=32, kv_heads=32, head_dim=96, context_length=4096)
    assert fit.fit_model(phi3_4k, 2_400 * MIB, machine(16)).n_ctx == 4096


def test_max_tokens_always_below_the_window():
    for n_ctx in (64, 300, 1024, 2048, 4096, 8192, 32768, 131072):
        f = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, machine(1000), n_ctx=n_ctx)
        assert 0 < f.max_tokens < n_ctx == f.n_ctx


def test_all_layers_on_a_big_gpu():
    f = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, machine(16, nvidia(40)))
    assert f.fits and f.device == "gpu" and f.n_gpu_layers == LLAMA_8B.block_count + 1
    assert f.n_ctx == 32768 and f.gpu_bytes <= 40 * GB
    assert "all 33 layers" in f.reason


def test_context_shrinks_before_layers_leave_the_gpu_down_to_the_agents_minimum():
    big = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, machine(16, nvidia(40)))
    f = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, machine(16, nvidia(8)))
    assert f.fits and f.n_gpu_layers == 33 and f.n_ctx < big.n_ctx and f.n_ctx >= fit.AGENT_MIN_CONTEXT
    assert f.gpu_bytes <= 8 * GB


def test_layers_move_to_ram_before_the_context_goes_below_the_agents_minimum():
    at_4096 = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, machine(16, nvidia(40)), n_ctx=4096).gpu_bytes
    at_8192 = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, machine(16, nvidia(40)), n_ctx=8192).gpu_bytes
    between = (at_4096 + at_8192) / 2 / GB  # all layers would fit at 4096 but not at 8192
    f = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, machine(16, nvidia(between)))
    assert f.fits and f.device == "partial" and f.n_ctx == 8192 and 25 <= f.n_gpu_layers < 33
    assert f.gpu_bytes <= between * GB


def test_partial_offload_when_the_model_is_bigger_than_the_gpu():
    f = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, machine(16, nvidia(3)))
    assert f.fits and f.device == "partial" and 0 < f.n_gpu_layers < 33
    assert f.n_ctx == fit.AGENT_MIN_CONTEXT
    assert f.gpu_bytes <= 3 * GB
    more = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, machine(16, nvidia(4.5)))
    assert f.n_gpu_layers < more.n_gpu_layers
    assert f"{f.n_gpu_layers} of 33 layers" in f.reason
    assert f.host_bytes > more.host_bytes  # the layers left behind are in RAM


def test_two_gpus_of_one_backend_add_up():
    one = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, machine(16, nvidia(3)))
    two = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, machine(16, nvidia(3, "A"), nvidia(3, "B")))
    assert two.n_gpu_layers > one.n_gpu_layers


def test_apple_unified_memory_offloads_everything_within_the_metal_limit():
    ram = 32 * GIB
    apple = GPU("apple", "Apple M2 Pro", "metal", int(ram * 0.75), None, unified_memory=True)
    hw = replace(machine(24, apple), total_ram_bytes=ram)
    f = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, hw)
    assert f.fits and f.device == "unified" and f.n_gpu_layers == 33
    assert f.total_bytes <= ram * 0.75
    assert "unified memory" in f.reason


def test_a_gpu_whose_memory_is_unknown_gets_no_layers_unless_it_shares_ram():
    blind = GPU("nvidia", "Mystery", "cuda", None, None)
    assert fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, machine(32, blind)).n_gpu_layers == 0
    gb10 = GPU("nvidia", "NVIDIA GB10", "cuda", None, None, unified_memory=True)
    f = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, machine(100, gb10))
    assert f.device == "unified" and f.n_gpu_layers == 33


def test_integrated_intel_gpu_and_unknown_backends_stay_on_cpu():
    intel = GPU("intel", "UHD 630", "sycl", None, None, unified_memory=True)
    f = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, machine(32, intel))
    assert f.device == "cpu" and f.n_gpu_layers == 0


def test_unknown_ram_does_not_claim_a_number():
    hw = replace(machine(8), total_ram_bytes=None, available_ram_bytes=None)
    f = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, hw)
    assert f.available_bytes is None and "unknown" in f.reason


def test_fit_file_reads_the_header_which_wins_over_the_entry(test_model_path):
    entries = catalog.load()
    entry = catalog.find(entries, "smollm2-135m")
    wrong = replace(entry, architecture=replace(entry.architecture, block_count=300, context_length=2048))
    hw = machine(16)
    from_file = fit.fit_file(test_model_path, hw, wrong)
    assert from_file.n_ctx == 8192  # the header's trained context, not the entry's 2048
    assert from_file.kv_cache_bytes == 180 * MIB  # 30 layers from the header, not 300
    assert from_file == fit.fit_file(test_model_path, hw)


def test_fit_file_on_a_bad_file_is_a_clear_error(tmp_path):
    from oi_local.errors import OiLocalError

    bad = tmp_path / "x.gguf"
    bad.write_text("nope")
    with pytest.raises(OiLocalError):
        fit.fit_file(bad, machine(16))


def test_rank_puts_fitting_recommended_first_and_keeps_the_rest_with_reasons():
    entries = catalog.load()
    ranked = fit.rank(entries, machine(12))
    assert [e.id for e, _ in ranked].count("smollm2-135m") == 1 and len(ranked) == len(entries)
    fits = [f.fits for _, f in ranked]
    assert fits == sorted(fits, reverse=True)  # every fitting one before every other
    assert True in fits and False in fits
    fitting = [e for e, f in ranked if f.fits]
    recommended = [e.recommended for e in fitting]
    assert recommended == sorted(recommended, reverse=True)
    for entry, f in ranked:
        if not f.fits:
            assert f.reason.startswith("needs ") and entry.size_bytes > 0
    assert any(e.id == "mixtral-8x7b-instruct-llamafile" and not f.fits for e, f in ranked)


# --- against a real llama.cpp server ------------------------------------------------------------------


@pytest.mark.server
@pytest.mark.timeout(900)
@pytest.mark.parametrize("n_ctx", [1024, 2048])
@pytest.mark.parametrize("flash_attn", [True, False])
def test_estimate_within_15_percent_of_a_real_server(test_model_path, n_ctx, flash_attn):
    """On a CPU-only machine the fit turns flash attention on (as the runner then starts the server)."""
    from fit_support import measure_server

    estimate = fit.fit_file(test_model_path, machine(16), n_ctx=n_ctx, flash_attn=None if flash_attn else False)
    assert estimate.flash_attn is flash_attn
    measured = measure_server(test_model_path, n_ctx, flash_attn=flash_attn)
    assert measured.prompt_tokens >= 0.85 * n_ctx  # the window really was (nearly) full
    error = estimate.total_bytes / measured.peak_after_fill - 1
    assert abs(error) <= 0.15, (
        f"n_ctx {n_ctx}: estimated {estimate.total_bytes / MIB:.1f} MiB, measured peak "
        f"{measured.peak_after_fill / MIB:.1f} MiB ({error:+.1%})"
    )


# --- realistic shapes: GGUF files written with GGUFWriter (sparse: the header and tensor table only) -------

H200_JSON = Path(__file__).parent / "fixtures" / "hardware" / "nvidia_h200_hardware.json"


def h200(*, llama_cpp_gpu: bool | None = True, free_vram: int | None = None) -> Hardware:
    """The H200 machine as `oi-local hardware --json` saw it there (tests/fixtures/hardware)."""
    import json

    data = json.loads(H200_JSON.read_text())
    gpu = GPU(**data["gpus"][0])
    if free_vram is not None:
        gpu = replace(gpu, free_vram_bytes=free_vram)
    cpu = CPU(**{**data["cpu"], "flags": frozenset(data["cpu"]["flags"])})
    return Hardware(data["total_ram_bytes"], data["available_ram_bytes"], data["free_disk_bytes"], None, cpu,
                    (gpu,), data["os"], (), llama_cpp_gpu=llama_cpp_gpu)


@pytest.fixture(scope="module")
def sparse(tmp_path_factory):
    """name -> a sparse GGUF of the issue's shapes (no disk used for the weights)."""
    from oi_local.models import shapes

    return shapes.write_issue_shapes(tmp_path_factory.mktemp("shapes"))


def _allocation(path: Path, n_ctx: int, n_gpu_layers: int):
    from oi_local.models import gguf_info, memory

    info = gguf_info.read(path)
    return memory.allocate(info.to_architecture(), memory.layout_from_header(info), n_ctx, n_gpu_layers,
                           vocab=info.vocab_size, n_ff=info.feed_forward_length)


@pytest.mark.parametrize("name, allocated", [("1.5b-f16", 5.78e9), ("8b-q8_0", 14.5e9)])
def test_gpu_estimate_within_10_percent_of_what_llama_cpp_allocated_on_the_h200(sparse, name, allocated):
    """The issue's measurements on a real H200 (model + KV + compute buffers from the server log, n_ctx 32768,
    all layers on the GPU): 5.78 GB for the 1.5B-shape F16, 14.5 GB for the 8B-shape Q8_0."""
    path = sparse[name]
    f = fit.fit_file(path, h200())
    assert f.fits and f.device == "gpu" and f.n_ctx == 32768
    a = _allocation(path, 32768, f.n_gpu_layers)
    assert abs(a.gpu / allocated - 1) <= 0.10, f"{name}: {a.gpu / GB:.2f} GB estimated, {allocated / GB:.2f} allocated"
    # the token-embedding table stays in host memory (501 MiB "CPU_Mapped" for the 1.5B shape)
    assert a.host_weights == 128256 * (4096 if name == "8b-q8_0" else 2048) * (34 / 32 if name == "8b-q8_0" else 2)
    assert f.gpu_bytes == a.gpu + int(a.gpu * fit.GPU_SHARE) + fit.GPU_CONTEXT["cuda"]  # a margin in bytes


def test_70b_f16_keeps_all_81_layers_on_the_h200_at_the_agents_context(sparse):
    """The issue: the old fit chose n_ctx 2048 ("needs 149.3 of 149.8 GB") or 79 of 81 layers, while the raw
    server with all 81 layers at n_ctx 8192 loaded and ran using 136,769 MiB of 143,771 MiB (and 134,069 MiB at
    2048; the 516 MiB CUDA context is that use less llama.cpp's buffers, the same at both contexts)."""
    f = fit.fit_file(sparse["70b-f16"], h200())
    assert f.fits and f.device == "gpu" and f.n_gpu_layers == 81 and f.n_ctx >= 8192
    at_8192 = _allocation(sparse["70b-f16"], 8192, 81)
    used = 136_769 * MIB  # nvidia-smi, the raw server loaded: llama.cpp's buffers and the CUDA context
    assert abs((at_8192.gpu + fit.GPU_CONTEXT["cuda"]) / used - 1) <= 0.02
    at_2048 = _allocation(sparse["70b-f16"], 2048, 81)
    assert abs((at_8192.gpu - at_2048.gpu) / ((136_769 - 134_069) * MIB) - 1) <= 0.02  # what n_ctx adds, measured
    assert f.gpu_bytes <= h200().gpus[0].free_vram_bytes
    assert at_8192.host_weights == 128256 * 8192 * 2  # the 2.1 GB token embedding on the host


def test_partial_offload_of_the_70b_under_a_smaller_vram_budget(sparse):
    """A GPU with 80 GB free: about half the layers on it at the agent's minimum context, the rest in RAM."""
    f = fit.fit_file(sparse["70b-f16"], h200(free_vram=80 * GB))
    assert f.fits and f.device == "partial" and f.n_ctx == fit.AGENT_MIN_CONTEXT
    assert 35 <= f.n_gpu_layers <= 45
    assert f.gpu_bytes <= 80 * GB and f.host_bytes <= h200().available_ram_bytes
    assert f.host_bytes + f.gpu_bytes > 141 * GB  # every byte is somewhere
    fewer = fit.fit_file(sparse["70b-f16"], h200(free_vram=40 * GB))
    assert 0 < fewer.n_gpu_layers < f.n_gpu_layers


def test_a_gpu_the_llama_cpp_build_cannot_use_gets_no_layers_and_a_note(sparse):
    f = fit.fit_file(sparse["1.5b-f16"], h200(llama_cpp_gpu=False))
    assert f.fits and f.device == "cpu" and f.n_gpu_layers == 0
    assert f.note == "GPU: NVIDIA H200 · llama.cpp build: CPU only — rebuild with `scripts/install.sh --gpu`"
    unknown = fit.fit_file(sparse["1.5b-f16"], h200(llama_cpp_gpu=None))  # not asked: the GPU is assumed usable
    assert unknown.device == "gpu" and not unknown.note


def test_flash_attention_and_a_q8_0_cache_are_followed_by_the_estimate(sparse):
    plain = fit.fit_file(sparse["8b-q8_0"], h200(), n_ctx=32768)
    fa = fit.fit_file(sparse["8b-q8_0"], h200(), n_ctx=32768, flash_attn=True)
    q8 = fit.fit_file(sparse["8b-q8_0"], h200(), n_ctx=32768, flash_attn=True, kv_type="q8_0")
    assert fa.flash_attn and fa.compute_bytes < plain.compute_bytes / 4  # no n_ctx x n_ubatch x heads scores
    assert q8.kv_cache_bytes == plain.kv_cache_bytes * 34 // 64 and q8.kv_type == "q8_0"
    assert q8.gpu_bytes < fa.gpu_bytes < plain.gpu_bytes
    assert not plain.flash_attn and plain.kv_type == "f16"  # the defaults: what the server is started with
    with pytest.raises(ValueError):
        fit.fit_file(sparse["8b-q8_0"], h200(), kv_type="q8_0")  # llama.cpp needs flash attention for it


def test_apple_unified_memory_is_one_pool_with_the_systems_share_kept(sparse):
    ram = 64 * GIB
    apple = GPU("apple", "Apple M2 Max", "metal", int(ram * 0.75), None, unified_memory=True)
    hw = replace(machine(60, apple), total_ram_bytes=ram, available_ram_bytes=60 * GIB)
    f = fit.fit_file(sparse["8b-q8_0"], hw)
    assert f.fits and f.device == "unified" and f.n_gpu_layers == 33
    assert f.host_bytes + f.gpu_bytes <= 60 * GIB - fit.RAM_RESERVE and f.gpu_bytes <= ram * 0.75
    small = replace(hw, total_ram_bytes=16 * GIB, available_ram_bytes=15 * GIB,
                    gpus=(replace(apple, total_vram_bytes=12 * GIB),))
    f = fit.fit_file(sparse["8b-q8_0"], small)  # 8.5 GB of weights: fits the pool, not at 32768 under 12 GiB
    assert f.fits and f.gpu_bytes <= 12 * GIB and f.host_bytes + f.gpu_bytes <= 15 * GIB
    assert f.n_ctx >= fit.AGENT_MIN_CONTEXT


@pytest.mark.server
@pytest.mark.timeout(300)
def test_a_random_weight_model_of_a_real_shape_runs_with_the_fits_choice(tmp_path):
    """A 12-layer 768-wide Q8_0 model written here, fitted on this machine, served by the runner with that fit,
    answers a completion (the window the fit chose is the one the server has)."""
    import httpx

    from oi_local.machine import hardware
    from oi_local.machine.paths import app_paths
    from oi_local.models import shapes
    from oi_local.serving.runners import llamacpp

    path = shapes.write(tmp_path / "small.gguf", shapes.SMALL, "Q8_0")
    paths = app_paths({"OI_LOCAL_HOME": str(tmp_path / "home")}).ensure()
    hw = hardware.probe(paths.models, state_dir=paths.state)
    f = fit.fit_file(path, hw)
    assert f.fits and f.n_ctx == shapes.SMALL.n_ctx_train == 8192
    server = llamacpp.start(path, f, paths=paths, model_id="small-random", reuse=False, progress=False)
    try:
        ep = server.endpoint
        assert ep.context_window == 8192
        reply = httpx.post(f"{ep.api_base}/completions", headers={"Authorization": f"Bearer {ep.api_key}"},
                           json={"prompt": "word word word", "max_tokens": 8, "temperature": 0}, timeout=120)
        reply.raise_for_status()
        assert reply.json()["usage"]["completion_tokens"] >= 1
    finally:
        server.stop()
