"""A local stand-in for the Hugging Face hub's file endpoint, for the real huggingface_hub client.

It serves `HEAD|GET /{repo}/resolve/{revision}/{filename}` the way the hub does for an LFS file served
directly (no CDN redirect): `X-Repo-Commit`, `X-Linked-Etag` (the LFS sha256, quoted), `X-Linked-Size`,
`ETag`, `Content-Length`, `Accept-Ranges`, and `Range` requests answered with 206 + `Content-Range`.
Unknown repos and files get 404 with the hub's `X-Error-Code` (RepoNotFound / EntryNotFound), a wrong
token 401. It counts requests and body bytes so tests can assert what a client fetched, can throttle
(to make a download slow enough to kill in the middle) and can serve wrong bytes under correct headers.

Run alone for manual tries: `python standins/hub_standin.py FILE [REPO]` serves FILE until Ctrl-C.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

DEFAULT_COMMIT = "0123456789abcdef0123456789abcdef01234567"
BLOCK = 64 * 1024  # bytes per write; with throttling, the unit of what may sit unread when a client dies


@dataclass
class HubFile:
    path: Path
    size: int
    sha256: str


@dataclass
class RequestRecord:
    method: str
    path: str
    range: str | None
    authorization: str | None


@dataclass
class HubStandin:
    """Start with `start()` (or as a context manager); `endpoint` is what HF_ENDPOINT should be."""

    commit: str = DEFAULT_COMMIT
    throttle_bytes_per_s: int | None = None  # None: as fast as possible
    wrong_bytes: bool = False  # serve corrupted content under the real file's headers
    token: str | None = None  # when set, requests must carry `Authorization: Bearer <token>`
    ignore_range: bool = False  # answer every GET with the whole file (200), as some proxies do
    gated: bool = False  # answer like a gated repo whose licence the token's user has not accepted
    fail_status: int | None = None  # answer every request with this HTTP status (500, 503, 429: a failing hub)
    files: dict[tuple[str, str], HubFile] = field(default_factory=dict)
    requests: list[RequestRecord] = field(default_factory=list)
    bytes_served: int = 0
    in_flight: int = 0  # bodies being sent right now
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def add_file(self, repo: str, filename: str, path: Path, sha256: str | None = None) -> HubFile:
        path = Path(path)
        if sha256 is None:
            sha256 = sha256_of(path)
        hub_file = HubFile(path=path, size=path.stat().st_size, sha256=sha256)
        self.files[(repo, filename)] = hub_file
        return hub_file

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the stand-in first"
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, repo: str, filename: str, revision: str = "main") -> str:
        return f"{self.endpoint}/{repo}/resolve/{revision}/{filename}"

    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()
            self.bytes_served = 0

    def count(self, method: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if method is None or r.method == method)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until no body is being sent (a killed client's transfer ends at the server's next write)."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)

    def start(self) -> HubStandin:
        standin = self

        class Handler(_Handler):
            hub = standin

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="hub-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HubStandin:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)

    def _add_bytes(self, n: int) -> None:
        with self._lock:
            self.bytes_served += n


_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<filename>.+)$")
_RANGE = re.compile(r"^bytes=(?P<start>\d*)-(?P<end>\d*)$")


class _Handler(BaseHTTPRequestHandler):
    hub: HubStandin
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:  # noqa: A002 - quiet: tests read counters, not logs
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, *, body: bool) -> None:
        hub = self.hub
        path = self.path.split("?", 1)[0]
        hub._record(RequestRecord(self.command, path, self.headers.get("Range"), self.headers.get("Authorization")))
        if hub.token is not None and self.headers.get("Authorization") != f"Bearer {hub.token}":
            return self._error(401, "RepoNotFound", "Invalid credentials in Authorization header")
        if hub.fail_status is not None:
            return self._error(hub.fail_status, None, "Internal Error - We're working hard to fix this as soon as possible!")
        if hub.gated:
            return self._error(403, "GatedRepo", "Access to this model is restricted: accept its conditions")
        match = _RESOLVE.match(path)
        if not match:
            return self._error(404, "RepoNotFound", "Repository not found")
        repo, revision, filename = match["repo"], unquote(match["revision"]), unquote(match["filename"])
        if not any(r == repo for r, _ in hub.files):
            return self._error(404, "RepoNotFound", "Repository not found")
        if revision not in ("main", hub.commit):
            return self._error(404, "RevisionNotFound", "Invalid rev id: " + revision)
        hub_file = hub.files.get((repo, filename))
        if hub_file is None:
            return self._error(404, "EntryNotFound", "Entry not found", commit=hub.commit)

        size = hub_file.size
        start, end = 0, size - 1
        status = 200
        wanted = None if hub.ignore_range else self.headers.get("Range")
        if wanted:
            m = _RANGE.match(wanted.strip())
            if not m or (not m["start"] and not m["end"]):
                return self._error(416, None, "Bad range", extra={"Content-Range": f"bytes */{size}"})
            if m["start"]:
                start = int(m["start"])
                end = min(int(m["end"]), size - 1) if m["end"] else size - 1
            else:  # suffix range: the last N bytes
                start, end = max(size - int(m["end"]), 0), size - 1
            if start >= size or start > end:
                return self._error(416, None, "Range not satisfiable", extra={"Content-Range": f"bytes */{size}"})
            status = 206

        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("X-Repo-Commit", hub.commit)
        self.send_header("X-Linked-Etag", f'"{hub_file.sha256}"')
        self.send_header("X-Linked-Size", str(size))
        self.send_header("ETag", f'"{hub_file.sha256}"')
        self.send_header("Content-Length", str(end - start + 1))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if body:
            with hub._lock:
                hub.in_flight += 1
            try:
                self._send_body(hub_file, start, end)
            finally:
                with hub._lock:
                    hub.in_flight -= 1

    def _send_body(self, hub_file: HubFile, start: int, end: int) -> None:
        hub = self.hub
        remaining = end - start + 1
        with open(hub_file.path, "rb") as f:
            f.seek(start)
            while remaining > 0:
                block = f.read(min(BLOCK, remaining))
                if not block:
                    break
                if hub.wrong_bytes:
                    block = bytes(b ^ 0x5A for b in block)
                try:
                    self.wfile.write(block)
                except (BrokenPipeError, ConnectionResetError):
                    return
                hub._add_bytes(len(block))
                remaining -= len(block)
                if hub.throttle_bytes_per_s:
                    time.sleep(len(block) / hub.throttle_bytes_per_s)

    def _error(self, status: int, code: str | None, message: str, *, commit: str | None = None,
               extra: dict[str, str] | None = None) -> None:
        payload = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if commit:
            self.send_header("X-Repo-Commit", commit)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


if __name__ == "__main__":
    import sys

    file = Path(sys.argv[1])
    repo = sys.argv[2] if len(sys.argv) > 2 else "standin/models"
    with HubStandin() as hub:
        hub.add_file(repo, file.name, file)
        print(f"HF_ENDPOINT={hub.endpoint}  repo={repo}  file={file.name}", flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
