"""A resumable HTTP download into a `.part` file, hashed while it streams, with a rich progress bar.

Why not huggingface_hub's own download: from huggingface_hub 1.x, hf_hub_download writes each attempt to a
process-unique `*.incomplete` file and never resumes it, so a download killed at 90% starts again from zero
(checked against standins/hub_standin.py: the second run fetched every byte again, without a Range header).
The store still uses huggingface_hub for everything else about the hub (URL, HF_ENDPOINT, token headers,
metadata and its errors); only the byte transfer is done here, with `Range` on the same `.part` file.
"""

from __future__ import annotations

import hashlib
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from oi_local.env import TIMEOUTS
from oi_local.errors import OiLocalError
from oi_local.files import open_private, sha256_file

RETRIES = 3
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class BackgroundHash:
    """sha256 fed from a queue by a worker thread, so hashing overlaps the network reads.

    The caller writes each block to disk itself before handing it over, so a killed process loses no
    written byte; the next run hashes the part file from disk anyway.
    """

    def __init__(self, initial=None) -> None:
        import queue
        import threading

        self._digest = initial or hashlib.sha256()
        self._queue: queue.Queue = queue.Queue(maxsize=256)  # at most 16 MiB of 64 KiB reads waiting
        self._thread = threading.Thread(target=self._work, name="sha256", daemon=True)
        self._thread.start()

    def reset(self) -> None:
        """Start over from zero bytes (the server sent the whole file instead of the rest)."""
        self.close()
        self.__init__()

    def _work(self) -> None:
        while (block := self._queue.get()) is not None:
            self._digest.update(block)

    def update(self, block: bytes) -> None:
        self._queue.put(block)

    def hexdigest(self) -> str:
        self.close()
        return self._digest.hexdigest()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


@contextmanager
def progress_bar(label: str, total: int | None, *, enabled: bool = True, initial: int = 0) -> Iterator[Callable[[int], None]]:
    """Yields `advance(n)`. A rich bar on stderr with size, speed and ETA; a no-op when disabled, and when stderr
    is not a terminal (a log or a pipe would only get the bar's last frame)."""
    if not enabled or not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=Console(file=sys.stderr)) as progress:
        task = progress.add_task(label, total=total, completed=initial)
        yield lambda n: progress.update(task, advance=n)


def hash_file(path: Path, *, progress: bool, label: str) -> str:
    """The sha256 of a file on disk, with a progress bar when `progress`."""
    with progress_bar(label, path.stat().st_size, enabled=progress) as advance:
        return sha256_file(path, on_bytes=advance).hexdigest()


def fetch(
    url: str,
    part: Path,
    *,
    headers: Mapping[str, str] | None = None,
    total: int | None = None,
    label: str = "",
    progress: bool = True,
    timeout: float = TIMEOUTS.download_read,
) -> str:
    """Download `url` into `part`, continuing after whatever bytes `part` already holds; return its sha256.

    Bytes already in `part` are never fetched again when the server honours `Range` (206); a server that
    answers 200 instead gets the whole file written from the start. Raises OiLocalError on HTTP errors, on a
    size that does not match `total`, and after RETRIES transport failures in a row with no progress.
    """

    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if total is not None and have > total:
        part.unlink()
        have = 0
    if total is not None and have == total:
        return sha256_file(part).hexdigest()
    digest = BackgroundHash(sha256_file(part) if have else None)
    try:
        return _fetch_into(url, part, digest, have, headers=headers, total=total, label=label, progress=progress,
                           timeout=timeout)
    finally:
        digest.close()


def _fetch_into(url: str, part: Path, digest: BackgroundHash, have: int, *, headers, total, label, progress,
                timeout) -> str:
    import httpx

    base_headers = {"Accept-Encoding": "identity", **(headers or {})}
    failures = 0
    with progress_bar(label or part.name, total, enabled=progress, initial=have) as advance, \
            httpx.Client(timeout=timeout, follow_redirects=True) as client:
        while True:
            request_headers = dict(base_headers)
            if have:
                request_headers["Range"] = f"bytes={have}-"
            try:
                with client.stream("GET", url, headers=request_headers) as response:
                    if response.status_code == 416 and have:
                        size = _total_from_content_range(response.headers.get("Content-Range"))
                        if size == have:  # we already had every byte
                            break
                        part.unlink()
                        digest.reset()
                        have = 0
                        continue
                    if response.status_code not in (200, 206):
                        raise OiLocalError(_http_error_message(url, response.status_code))
                    if response.status_code == 206:
                        start = _start_from_content_range(response.headers.get("Content-Range"))
                        if start != have:  # not the bytes asked for: start over without Range
                            part.unlink()
                            advance(-have)
                            digest.reset()
                            have = 0
                            continue
                        total = total or _total_from_content_range(response.headers.get("Content-Range"))
                        mode = "ab"
                    else:  # 200: no Range support, or a fresh download
                        if have:
                            advance(-have)
                            digest.reset()
                        have, mode = 0, "wb"
                        length = response.headers.get("Content-Length")
                        total = total or (int(length) if length and length.isdigit() else None)
                    with open_private(part, mode) as out:
                        # iter_raw yields each read as it arrives: what a kill loses is at most one read.
                        for block in response.iter_raw():
                            out.write(block)
                            digest.update(block)
                            have += len(block)
                            advance(len(block))
                            failures = 0
                break
            except httpx.TransportError as error:
                failures += 1
                if failures > RETRIES:
                    raise OiLocalError(
                        f"The download from {url} failed ({type(error).__name__}: {error}). The {have} bytes "
                        f"received so far are kept in {part}; run the same command again to resume."
                    ) from error
                time.sleep(1)
    if total is not None and have != total:
        raise OiLocalError(
            f"The download from {url} ended after {have} of {total} bytes. The part is kept in {part}; "
            "run the same command again to resume."
        )
    return digest.hexdigest()


def _start_from_content_range(value: str | None) -> int | None:
    match = _CONTENT_RANGE.match(value or "")
    return int(match.group(1)) if match else None


def _total_from_content_range(value: str | None) -> int | None:
    match = re.search(r"/(\d+)\s*$", value or "")
    return int(match.group(1)) if match else None


def _http_error_message(url: str, status: int) -> str:
    if status in (401, 403):
        return (f"The server refused the download of {url} (HTTP {status}). For a gated or private Hugging Face "
                "model, accept its licence on the model page and set HF_TOKEN to a token with read access.")
    if status == 404:
        return f"{url} does not exist (HTTP 404). Check the model's source in the catalog."
    return f"The download of {url} failed with HTTP {status}. Try again later, or pick another model."
