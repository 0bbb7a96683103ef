"""machine/speed: the bandwidth measurement and its cache, the decode estimate on realistic shapes, the
labels, and recommendations that know speed (fit.rank, `oi-local models list`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from oi_local.machine import hardware, speed
from oi_local.machine.hardware import CPU, GPU, Hardware
from oi_local.models import catalog, fit, shapes

GB = 1000**3

TWO_CORES = Hardware(total_ram_bytes=25 * GB, available_ram_bytes=20 * GB, free_disk_bytes=70 * GB, disk_path=Path("/"),
                     cpu=CPU("test cpu", 2, 2, frozenset({"avx2"})), os="Linux")


def test_the_host_bandwidth_is_measured_once_and_cached_per_machine(tmp_path):
    measured = speed.host_bandwidth(tmp_path, "cpu A|2|2|25000000000")
    assert 1e8 < measured < 1e13  # bytes per second: a real measurement of this machine
    cache = json.loads((tmp_path / "bandwidth.json").read_text())
    assert cache["machine"] == "cpu A|2|2|25000000000" and cache["host_bytes_per_second"] == measured
    speed.save_host_bandwidth(tmp_path, "cpu A|2|2|25000000000", 123e9)
    assert speed.host_bandwidth(tmp_path, "cpu A|2|2|25000000000") == 123e9  # read back, not measured again
    assert speed.host_bandwidth(tmp_path, "cpu B|8|16|64000000000") != 123e9  # another machine: measured
    (tmp_path / "bandwidth.json").write_text("{not json")
    assert speed.host_bandwidth(tmp_path, "cpu A|2|2|25000000000") > 0  # a broken cache is measured over


def test_gpu_bandwidth_comes_from_the_cards_published_figure():
    assert speed.gpu_bandwidth("NVIDIA H200") == 4800e9
    assert speed.gpu_bandwidth("NVIDIA GeForce RTX 4090") == 1008e9
    assert speed.gpu_bandwidth("Apple M2 Max") == 400e9 and speed.gpu_bandwidth("Apple M2") == 100e9
    assert speed.gpu_bandwidth("Mystery GPU 9000") is None


def test_labels_and_the_slow_mark():
    assert speed.speed_label(None) == ""
    assert speed.speed_label(612.3) == "~612 tok/s"
    assert speed.speed_label(12.4) == "~12 tok/s"
    assert speed.speed_label(6.0) == "~6 tok/s"
    assert speed.speed_label(4.96) == "~5 tok/s, slow here"
    assert speed.speed_label(0.42) == "~0.4 tok/s, slow here"


@pytest.fixture(scope="module")
def shaped(tmp_path_factory):
    """name -> a sparse GGUF of the issue's shapes (no disk used for the weights)."""

    return shapes.write_issue_shapes(tmp_path_factory.mktemp("speed"))


def _h200(free: int | None = None) -> Hardware:
    gpu = GPU("nvidia", "NVIDIA H200", "cuda", 150754820096, free or 150109945856, driver="580.159.04")
    return replace(TWO_CORES, total_ram_bytes=135 * GB, available_ram_bytes=134 * GB, gpus=(gpu,), llama_cpp_gpu=True)


@pytest.mark.parametrize("name, measured", [("1.5b-f16", 607.7), ("8b-q8_0", 211.5), ("70b-f16", 26.7)])
def test_gpu_decode_estimate_against_the_issues_h200_runs(shaped, name, measured):
    """The issue's measurements on a real H200 (all layers on the GPU): 607.7, 211.5 and 26.7 tok/s."""
    bandwidth = speed.Bandwidth(host=60e9, gpu=speed.gpu_bandwidth("NVIDIA H200"))
    f = fit.fit_file(shaped[name], _h200(), bandwidth=bandwidth)
    assert f.device == "gpu" and f.tokens_per_second is not None
    assert abs(f.tokens_per_second / measured - 1) <= 0.25, f"{name}: ~{f.tokens_per_second:.0f} vs {measured}"


def test_partial_offload_is_between_the_gpu_and_the_cpu_speed(shaped):
    bandwidth = speed.Bandwidth(host=60e9, gpu=4800e9)
    full = fit.fit_file(shaped["70b-f16"], _h200(), bandwidth=bandwidth)
    part = fit.fit_file(shaped["70b-f16"], _h200(free=80 * GB), bandwidth=bandwidth)
    cpu = fit.fit_file(shaped["70b-f16"], replace(_h200(), gpus=(), llama_cpp_gpu=None), bandwidth=bandwidth,
                       n_ctx=2048)
    assert part.device == "partial"
    assert cpu.tokens_per_second < part.tokens_per_second < full.tokens_per_second
    assert speed.is_slow(cpu.tokens_per_second) and "slow here" in cpu.speed_label


def test_more_bytes_per_token_is_slower_on_the_same_machine(shaped):
    bandwidth = speed.Bandwidth(host=20e9)
    rates = [fit.fit_file(shaped[n], TWO_CORES, bandwidth=bandwidth, n_ctx=2048).tokens_per_second
             for n in ("1.5b-f16", "8b-q8_0")]
    assert rates[0] > rates[1] > 0


def test_rank_never_recommends_a_slow_model_and_prefers_the_best_fast_one():
    entries = catalog.load()
    slow_machine = fit.rank(entries, TWO_CORES, bandwidth=speed.Bandwidth(host=8e9))
    recommended = [(e, f) for e, f in slow_machine if e.recommended]
    assert recommended and all(f.fits and f.fast_enough for _, f in recommended)
    by_id = {e.id: (e, f) for e, f in slow_machine}
    big, big_fit = by_id["qwen2.5-coder-14b"]
    assert big_fit.fits and not big.recommended and "slow here" in big_fit.speed_label
    first = slow_machine[0]
    assert first[0].recommended and first[1].fast_enough  # the menu's default is the best fast-enough model
    fast_machine = fit.rank(entries, TWO_CORES, bandwidth=speed.Bandwidth(host=400e9))
    assert dict((e.id, e.recommended) for e, _ in fast_machine)["qwen2.5-coder-14b"]
    order = [f.fits and f.fast_enough for _, f in slow_machine]
    assert order == sorted(order, reverse=True)  # fast enough first, then slow, then not fitting


def test_rank_recommends_the_best_fast_model_when_no_catalog_pick_is_fast_enough():
    entries = [e for e in catalog.load() if e.format == "gguf"]
    crawl = fit.rank(entries, TWO_CORES, bandwidth=speed.Bandwidth(host=2e9))
    picks = [e for e, f in crawl if e.recommended]
    assert len(picks) == 1 and crawl[0][0] == picks[0] and crawl[0][1].fast_enough
    fast = [e for e, f in crawl if f.fits and f.fast_enough]
    assert not [e for e in fast if "code" in e.capabilities and e.size_bytes > picks[0].size_bytes]
    if "code" not in picks[0].capabilities:
        assert not [e for e in fast if "code" in e.capabilities] and picks[0] == max(fast, key=lambda e: e.size_bytes)


def _seed(home: Path, bytes_per_second: float) -> None:
    """The host bandwidth this machine 'measured', in the app's state folder (models list reads it there)."""
    hw = hardware.probe(home / "models", ask_llama_cpp=False)
    speed.save_host_bandwidth(home / "state", speed.machine_key(hw), bytes_per_second)


def _models_list(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OI_LOCAL_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "oi_local", "models", "list", "--all", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_models_list_shows_the_speed_and_marks_slow_models(tmp_path):
    home = tmp_path / "home"
    _seed(home, 8e9)
    listed = json.loads(_models_list(home, "--json").stdout)["catalog"]
    by_id = {e["id"]: e for e in listed}
    assert by_id["qwen2.5-coder-14b"]["tokens_per_second"] < speed.SLOW_TOKENS_PER_SECOND
    assert by_id["qwen2.5-coder-14b"]["recommended"] is False
    assert by_id["smollm2-135m"]["tokens_per_second"] > by_id["qwen2.5-coder-14b"]["tokens_per_second"]
    assert all(e["tokens_per_second"] >= speed.SLOW_TOKENS_PER_SECOND for e in listed if e["recommended"])
    table = _models_list(home).stdout
    line = next(line for line in table.splitlines() if "qwen2.5-coder-14b" in line)
    assert "tok/s, slow here" in line
    assert "★" in table


@pytest.mark.server
@pytest.mark.timeout(240)
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads a process's environment from /proc")
@pytest.mark.parametrize(("load", "given", "asked"), [(0.0, None, None), (3.0, None, None), (3.0, "ACTIVE", None),
                                                        (0.0, None, "3")])
def test_the_llama_cpp_server_threads_follow_the_load_at_start_unless_told_otherwise(tmp_path, test_model_path,
                                                                                     monkeypatch, load, given, asked):
    """Idle: every physical core, OpenMP's own waiting (no OMP_WAIT_POLICY); busy: the free cores (at least one)
    sleeping while they wait (PASSIVE). A value the user set is kept. The load is the one input made up here."""
    import psutil

    from oi_local.machine import threads
    from oi_local.machine.paths import app_paths
    from oi_local.serving.runners import llamacpp

    monkeypatch.setattr(threads, "busy_cores", lambda: load)
    if given is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", given)
    if asked is None:
        monkeypatch.delenv("OI_LOCAL_THREADS", raising=False)
    else:
        monkeypatch.setenv("OI_LOCAL_THREADS", asked)
    paths = app_paths({"OI_LOCAL_HOME": str(tmp_path / "home")}).ensure()
    f = fit.fit_file(test_model_path, TWO_CORES, n_ctx=1024)
    server = llamacpp.start(test_model_path, f, paths=paths, model_id="smollm2-135m", reuse=False, progress=False)
    try:
        environ = Path(f"/proc/{server.endpoint.pid}/environ").read_bytes().split(b"\0")
        policy = [e for e in environ if e.startswith(b"OMP_WAIT_POLICY=")]
        assert policy == ([f"OMP_WAIT_POLICY={given}".encode()] if given else
                          [b"OMP_WAIT_POLICY=PASSIVE"] if load else [])
        argv = psutil.Process(server.endpoint.pid).cmdline()
        cores = threads.physical_cores()
        expected = asked or str(cores if not load else max(1, cores - 3))
        assert argv[argv.index("--n_threads") + 1] == expected == argv[argv.index("--n_threads_batch") + 1]
    finally:
        server.stop()


def test_a_thread_count_that_is_not_one_is_a_clear_error():
    from oi_local.env import server_threads
    from oi_local.errors import OiLocalError

    assert server_threads({"OI_LOCAL_THREADS": " 4 "}) == 4 and server_threads({}) is None
    for bad in ("0", "-2", "four", "1.5"):
        with pytest.raises(OiLocalError, match="OI_LOCAL_THREADS is .* not a thread count"):
            server_threads({"OI_LOCAL_THREADS": bad})


def test_the_thread_plan_follows_the_load():
    from oi_local.machine.threads import choose

    assert (choose(8, 0.2).threads, choose(8, 0.2).passive) == (8, False)
    busy = choose(8, 2.6)
    assert busy.threads == 5 and busy.passive and "busy" in busy.reason
    assert choose(2, 1.0).threads == 1 and choose(2, 9.0).threads == 1  # never fewer than one
    assert choose(0, 0.0).threads == 1


def test_another_process_keeping_a_core_busy_makes_the_machine_busy_and_our_own_children_do_not():
    from raw_llama import core_kept_busy

    from oi_local.machine.threads import BUSY_CORES, busy_cores

    with core_kept_busy():
        assert busy_cores(0.3) >= BUSY_CORES
    before = busy_cores(0.3)  # whatever else this machine runs now
    own = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert busy_cores(0.3) < before + 0.5  # a child of ours (the Python kernel starting, say) is not load
    finally:
        own.kill()
        own.wait()
