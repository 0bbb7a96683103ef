"""hardware: the real probe on this machine, and the parsers on recorded tool outputs (tests/fixtures/hardware)."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

import standins
from oi_local.machine import hardware, parsers

FIXTURES = Path(__file__).parent / "fixtures" / "hardware"
MIB = 1024 * 1024


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


# --- the real probe -----------------------------------------------------------------------------------


def test_probe_on_this_machine_reads_ram_disk_and_cpu(tmp_path):
    models = tmp_path / "not" / "yet" / "models"  # does not exist: measured on the nearest parent
    hw = hardware.probe(models)
    assert hw.total_ram_bytes == psutil.virtual_memory().total
    assert 0 < hw.available_ram_bytes <= hw.total_ram_bytes
    assert hw.disk_path == tmp_path
    assert abs(hw.free_disk_bytes - psutil.disk_usage(str(tmp_path)).free) < 64 * MIB
    assert hw.cpu.logical_cores == psutil.cpu_count()
    assert hw.cpu.physical_cores == psutil.cpu_count(logical=False)
    assert hw.cpu.model and hw.cpu.model != "unknown"
    assert hw.cpu.arch == platform.machine()
    if Path("/proc/cpuinfo").exists():
        text = Path("/proc/cpuinfo").read_text()
        assert ("avx2" in hw.cpu.flags) == (" avx2" in text)
        assert ("amx" in hw.cpu.flags) == (" amx_tile" in text)
    assert hw.os.startswith(platform.system())


def test_probe_reports_the_disk_of_the_folder_not_root(tmp_path):
    hw = hardware.probe(tmp_path)
    assert hw.disk_path == tmp_path
    assert hw.free_disk_bytes == pytest.approx(psutil.disk_usage(str(tmp_path)).free, abs=64 * MIB)


def _fake_tool(folder: Path, name: str, stdout: str, exit_code: int = 0) -> None:
    """A stand-in executable for a GPU tool no machine here has: prints a recorded output."""
    data = folder / f"{name}.out"
    data.write_text(stdout)
    script = folder / name
    script.write_text(f"#!/bin/sh\ncat '{data}'\nexit {exit_code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


@pytest.mark.skipif(platform.system() != "Linux", reason="the tool path probe is the Linux one")
def test_probe_on_the_h200_outputs_gives_what_the_real_h200_gave(tmp_path, monkeypatch):
    """nvidia-smi printing what it printed on a real H200 machine: the GPU part of `oi-local hardware --json`
    there (tests/fixtures/hardware/nvidia_h200_hardware.json) is what the probe makes of it here."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    standins.nvidia_smi(bin_dir)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    hw = hardware.probe(tmp_path)
    recorded = json.loads(fixture("nvidia_h200_hardware.json"))
    assert [dataclasses.asdict(g) for g in hw.gpus if g.vendor == "nvidia"] == recorded["gpus"]
    assert not [p for p in hw.problems if "NVIDIA" in p]


@pytest.mark.skipif(platform.system() != "Linux", reason="the tool path probe is the Linux one")
def test_probe_runs_nvidia_smi_and_rocm_smi_from_path(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    standins.nvidia_smi(bin_dir, query="nvidia_smi_two_gpus.csv")
    _fake_tool(bin_dir, "rocm-smi", fixture("rocm_smi_two_gpus.json"))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    hw = hardware.probe(tmp_path)
    names = [g.name for g in hw.gpus]
    assert names[:2] == ["NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 3090"]
    assert "Radeon RX 7900 XTX" in names and "AMD Instinct MI210" in names
    assert hw.gpus[0].runtime_version == "13.0"  # from the H200's plain nvidia-smi header
    assert hw.problems == ()


@pytest.mark.skipif(platform.system() != "Linux", reason="the tool path probe is the Linux one")
def test_a_failing_tool_is_a_problem_a_missing_one_is_not(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_tool(bin_dir, "nvidia-smi", "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n", 9)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    hw = hardware.probe(tmp_path)
    assert hw.gpus == () or all(g.vendor != "nvidia" for g in hw.gpus)
    assert len([p for p in hw.problems if "NVIDIA" in p]) == 1
    assert "couldn't communicate" in next(p for p in hw.problems if "NVIDIA" in p)
    assert not any("rocm" in p.lower() for p in hw.problems)  # rocm-smi is simply absent

    _fake_tool(bin_dir, "nvidia-smi", fixture("nvidia_smi_no_devices.txt"), 6)
    hw = hardware.probe(tmp_path)
    assert not any("NVIDIA" in p for p in hw.problems)  # driver present, no GPU: nothing wrong


def test_probe_never_raises_when_a_tool_prints_garbage(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_tool(bin_dir, "rocm-smi", "this is not json")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    hw = hardware.probe(tmp_path)
    if platform.system() == "Linux":
        assert any("rocm-smi" in p for p in hw.problems)


def test_hardware_command_json_and_table(tmp_path):
    env = {**os.environ, "OI_LOCAL_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "oi_local.face.cli", "hardware", "--json"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["total_ram_bytes"] == psutil.virtual_memory().total
    assert data["disk_path"] == str(tmp_path)  # the models folder does not exist yet: its nearest parent
    assert set(data["cpu"]) >= {"model", "physical_cores", "logical_cores", "flags"}
    assert isinstance(data["gpus"], list) and isinstance(data["problems"], list)
    done = subprocess.run([sys.executable, "-m", "oi_local.face.cli", "hardware"], capture_output=True, text=True,
                          env={**env, "COLUMNS": "120"}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "RAM" in done.stdout and "CPU features" in done.stdout and "GPU" in done.stdout


# --- parsers on recorded outputs ----------------------------------------------------------------------


def test_nvidia_two_gpus():
    gpus = parsers.parse_nvidia_smi(fixture("nvidia_smi_two_gpus.csv"), "12.4")
    assert [g.name for g in gpus] == ["NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 3090"]
    assert gpus[0].total_vram_bytes == 24564 * MIB and gpus[0].free_vram_bytes == 23997 * MIB
    assert gpus[1].free_vram_bytes == 1210 * MIB
    assert all(g.vendor == "nvidia" and g.backend == "cuda" and g.driver == "550.54.14" for g in gpus)
    assert all(g.runtime_version == "12.4" and not g.unified_memory for g in gpus)


def test_nvidia_integrated_gpu_with_unreported_memory():
    (gpu,) = parsers.parse_nvidia_smi(fixture("nvidia_smi_integrated.csv"))
    assert gpu.name == "NVIDIA GB10"
    assert gpu.total_vram_bytes is None and gpu.free_vram_bytes is None
    assert gpu.unified_memory


def test_nvidia_h200():
    (gpu,) = parsers.parse_nvidia_smi(fixture("nvidia_h200_query.csv"), "13.0")
    assert gpu.name == "NVIDIA H200" and gpu.vendor == "nvidia" and gpu.backend == "cuda"
    assert gpu.total_vram_bytes == 143771 * MIB and gpu.free_vram_bytes == 143156 * MIB
    assert gpu.driver == "580.159.04" and not gpu.unified_memory


def test_nvidia_cuda_version_from_header():
    assert parsers.parse_nvidia_cuda_version(fixture("nvidia_h200_smi.txt")) == "13.0"
    assert parsers.parse_nvidia_cuda_version(fixture("nvidia_smi_no_devices.txt")) is None


def test_nvidia_no_gpu_output_gives_no_gpus():
    assert parsers.parse_nvidia_smi("") == []
    assert parsers.parse_nvidia_smi(fixture("nvidia_smi_no_devices.txt")) == []


def test_rocm_two_gpus():
    gpus = parsers.parse_rocm_smi(fixture("rocm_smi_two_gpus.json"))
    assert [g.name for g in gpus] == ["Radeon RX 7900 XTX", "AMD Instinct MI210"]
    assert gpus[0].total_vram_bytes == 25753026560
    assert gpus[0].free_vram_bytes == 25753026560 - 1037295616
    assert all(g.vendor == "amd" and g.backend == "rocm" and not g.unified_memory for g in gpus)


def test_rocm_integrated_apu():
    (gpu,) = parsers.parse_rocm_smi(fixture("rocm_smi_apu.json"))
    assert gpu.name == "AMD Radeon 780M"
    assert gpu.total_vram_bytes == 512 * MIB
    assert gpu.unified_memory


def test_apple_silicon_is_unified_metal():
    ram = 32 * 1024**3
    (gpu,) = parsers.parse_system_profiler(fixture("system_profiler_apple_m2.json"), ram)
    assert gpu.vendor == "apple" and gpu.name == "Apple M2 Pro"
    assert gpu.backend == "metal" and gpu.unified_memory
    assert gpu.total_vram_bytes == ram * 3 // 4
    assert gpu.driver == "metal3"


def test_intel_mac_with_integrated_and_discrete_gpu():
    intel, amd = parsers.parse_system_profiler(fixture("system_profiler_intel_mac.json"), 16 * 1024**3)
    assert intel.vendor == "intel" and intel.unified_memory and intel.total_vram_bytes == 1536 * MIB
    assert amd.vendor == "amd" and not amd.unified_memory and amd.total_vram_bytes == 8 * 1024**3
    assert amd.backend == "metal"


def test_no_gpu_system_profiler():
    assert parsers.parse_system_profiler(fixture("system_profiler_no_gpu.json"), 8 * 1024**3) == []


def test_cpuinfo_x86_and_arm():
    model, flags = parsers.parse_cpuinfo(fixture("cpuinfo_x86.txt"))
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    assert flags == {"avx", "avx2", "avx512f", "amx", "f16c", "fma"}
    model, flags = parsers.parse_cpuinfo(fixture("cpuinfo_arm.txt"))
    assert flags == {"neon", "f16c"}


def test_sysctl_apple_and_intel_mac():
    model, flags = parsers.parse_sysctl(fixture("sysctl_apple.txt"))
    assert model == "Apple M2 Pro" and flags == {"neon", "f16c"}
    model, flags = parsers.parse_sysctl(fixture("sysctl_intel_mac.txt"))
    assert model.startswith("Intel(R) Core(TM) i9")
    assert flags == {"avx", "avx2", "fma", "f16c"}


def _card(root: Path, name: str, vendor: str, **files: str) -> None:
    device = root / name / "device"
    device.mkdir(parents=True)
    (device / "vendor").write_text(vendor + "\n")
    for key, value in files.items():
        (device / key).write_text(value + "\n")


def test_sysfs_amd_discrete_intel_integrated_and_connectors(tmp_path):
    _card(tmp_path, "card0", "0x8086")
    _card(tmp_path, "card1", "0x1002", mem_info_vram_total=str(16 * 1024**3), mem_info_vram_used=str(1024**3))
    (tmp_path / "card1-DP-1").mkdir()  # a connector, not a card
    _card(tmp_path, "card2", "0x1af4")  # a virtual display adapter: not a GPU we can use
    gpus = parsers.parse_sysfs_gpus(tmp_path)
    assert [g.vendor for g in gpus] == ["intel", "amd"]
    intel, amd = gpus
    assert intel.unified_memory and intel.total_vram_bytes is None
    assert amd.total_vram_bytes == 16 * 1024**3 and amd.free_vram_bytes == 15 * 1024**3
    assert amd.backend == "rocm" and not amd.unified_memory
    assert parsers.parse_sysfs_gpus(tmp_path / "missing") == []


def test_to_dict_is_json_ready(tmp_path):
    hw = hardware.probe(tmp_path)
    data = json.loads(json.dumps(hardware.to_dict(hw)))
    assert data["cpu"]["flags"] == sorted(hw.cpu.flags)
