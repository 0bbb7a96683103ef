"""models/memory: what llama.cpp allocates, checked against the real llama.cpp server's own log lines (model,
KV and compute buffer sizes) for random-weight GGUF files of real shapes written here, and the test model."""

from __future__ import annotations

import pytest

from oi_local.models import gguf_info, memory, shapes

MIB = 1024 * 1024

# What llama.cpp prints (CPU lines from this machine's server; CUDA lines in the same format as the H200's)
LOG = """\
load_tensors: offloading 16 repeating layers to GPU
load_tensors:   CPU_Mapped model buffer size =   501.00 MiB
load_tensors:        CUDA0 model buffer size =  2357.26 MiB
llama_context:  CUDA_Host  output buffer size =     0.49 MiB
llama_kv_cache:      CUDA0 KV buffer size =  1024.00 MiB
sched_reserve:      CUDA0 compute buffer size =  2134.01 MiB
sched_reserve:  CUDA_Host compute buffer size =    72.01 MiB
~llama_context:      CUDA0 compute buffer size is 2134.0098 MiB, matches expectation of 2134.0098 MiB
"""


def test_the_log_lines_are_read_per_device_and_kind():
    found = memory.parse_log(LOG)
    assert found[("CPU_Mapped", "model")] == 501 * MIB
    assert found[("CUDA0", "KV")] == 1024 * MIB
    assert found[("CUDA_Host", "compute")] == int(72.01 * MIB)
    assert abs(memory.gpu_bytes_in_log(found) - (2357.26 + 1024 + 2134.01) * MIB) < 4
    assert abs(memory.host_bytes_in_log(found) - (501 + 72.01) * MIB) < 4  # output buffers are not counted


@pytest.fixture(scope="module")
def models(tmp_path_factory, test_model_path):
    folder = tmp_path_factory.mktemp("memory")
    return {
        "tiny F16 (random)": shapes.write(folder / "tiny.gguf", shapes.TINY, "F16"),
        "small Q8_0 (random)": shapes.write(folder / "small.gguf", shapes.SMALL, "Q8_0"),
        "1.5B-shape F16 (sparse)": shapes.write(folder / "l15.gguf", shapes.LLAMA_1_5B, "F16", sparse=True),
        "test model": test_model_path,
    }


@pytest.mark.server
@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", ["tiny F16 (random)", "small Q8_0 (random)", "1.5B-shape F16 (sparse)", "test model"])
@pytest.mark.parametrize("n_ctx", [2048, 8192])
def test_allocation_matches_the_real_servers_log_on_the_cpu(models, name, n_ctx, tmp_path):
    from fit_support import server_log

    path = models[name]
    info = gguf_info.read(path)
    arch = info.to_architecture()
    if n_ctx > arch.context_length:
        n_ctx = arch.context_length
    found = memory.parse_log(server_log(path, n_ctx, tmp_path / "server.log"))
    logged = {kind: sum(n for (device, k), n in found.items() if k == kind and device.startswith("CPU"))
              for kind in ("model", "KV", "compute")}
    a = memory.allocate(arch, memory.layout_from_header(info), n_ctx, 0, vocab=info.vocab_size,
                        n_ff=info.feed_forward_length)
    assert memory.gpu_bytes_in_log(found) == 0 and a.gpu == 0
    assert abs(a.host_weights / logged["model"] - 1) <= 0.01
    assert abs(a.host_kv / logged["KV"] - 1) <= 0.01
    assert abs(a.host_compute / logged["compute"] - 1) <= 0.10, (
        f"{name} n_ctx {n_ctx}: compute {a.host_compute / MIB:.1f} MiB estimated, {logged['compute'] / MIB:.1f} logged")
    total = sum(logged.values())
    assert abs(a.host / total - 1) <= 0.10
