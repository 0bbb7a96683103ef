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


def test_context_shrinks_to_what_fits_and_never_below_2048_unless_nothing_else_does():
    at = {c: fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, machine(64), n_ctx=c).total_bytes
          for c in (1024, 2048, 4096, 8192, 16384, 32768)}
    assert at[1024] < at[2048] < at[4096] < at[8192] < at[16384] < at[32768]
    f = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, usable((at[8192] + at[16384]) / 2))
    assert f.fits and f.n_ctx == 8192
    f = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, usable((at[2048] + at[4096]) / 2))
    assert f.fits and f.n_ctx == 2048
    f = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, usable((at[1024] + at[2048]) / 2))
    assert f.fits and f.n_ctx == 1024 and "only with a 1024-token context" in f.reason
    f = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, machine(2))
    assert not f.fits and f.n_ctx == 2048
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


def test_context_shrinks_before_layers_leave_the_gpu():
    big = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, machine(16, nvidia(40)))
    f = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, machine(16, nvidia(8)))
    assert f.fits and f.n_gpu_layers == 33 and f.n_ctx < big.n_ctx
    assert f.gpu_bytes <= 8 * GB - fit.GPU_RESERVE


def test_partial_offload_when_the_model_is_bigger_than_the_gpu():
    f = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, machine(16, nvidia(3)))
    assert f.fits and f.device == "partial" and 0 < f.n_gpu_layers < 33
    assert f.n_ctx == 2048
    assert f.gpu_bytes <= 3 * GB - fit.GPU_RESERVE
    more = fit.fit_model(LLAMA_8B, LLAMA_8B_WEIGHTS, machine(16, nvidia(4.5)))
    assert f.n_gpu_layers < more.n_gpu_layers
    assert f"{f.n_gpu_layers} of 33 layers" in f.reason


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
def test_estimate_within_15_percent_of_a_real_server(test_model_path, n_ctx):
    from fit_support import measure_server

    estimate = fit.fit_file(test_model_path, machine(16), n_ctx=n_ctx)
    measured = measure_server(test_model_path, n_ctx)
    assert measured.prompt_tokens >= 0.85 * n_ctx  # the window really was (nearly) full
    error = estimate.total_bytes / measured.peak_after_fill - 1
    assert abs(error) <= 0.15, (
        f"n_ctx {n_ctx}: estimated {estimate.total_bytes / MIB:.1f} MiB, measured peak "
        f"{measured.peak_after_fill / MIB:.1f} MiB ({error:+.1%})"
    )
