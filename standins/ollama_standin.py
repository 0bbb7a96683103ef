"""A stand-in for the Ollama server (no machine here can run Ollama), speaking its real HTTP protocol.

Implements what oi_local and litellm use: GET /api/version, GET /api/tags, POST /api/show, streamed
POST /api/pull (NDJSON status lines with total/completed), POST /api/chat (streamed NDJSON or one
object) and POST /v1/chat/completions. Chat is answered by a real llama.cpp server behind it.

In a test:  standin = OllamaStandin(backend=llama_server).start(); ...; standin.stop()
As a program (also as a fake `ollama` executable: `ollama serve` listens on OLLAMA_HOST):
    python standins/ollama_standin.py serve      with OLLAMA_STANDIN_BACKEND=URL [OLLAMA_STANDIN_KEY=K]
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

VERSION = "0.5.7"

# What the stand-in's "library" can pull. smollm2:135m is served by the backend's test model.
LIBRARY = {
    "smollm2:135m": {
        "size": 94_000_000,
        "family": "llama",
        "parameter_size": "134.52M",
        "quantization_level": "Q4_1",
        "model_info": {
            "general.architecture": "llama",
            "general.parameter_count": 134515008,
            "llama.context_length": 8192,
            "llama.block_count": 30,
            "llama.embedding_length": 576,
            "llama.attention.head_count": 9,
            "llama.attention.head_count_kv": 3,
        },
    },
}


def _digest(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


class OllamaStandin:
    def __init__(
        self,
        *,
        backend_url: str,
        backend_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        local_models: tuple[str, ...] = (),
        library: dict | None = None,
    ) -> None:
        self.backend_url = backend_url.rstrip("/")  # ".../v1"
        self.backend_key = backend_key
        self.library = dict(LIBRARY if library is None else library)
        self.local = {name: self.library[name] for name in local_models}
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, json body) for assertions
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                standin._handle(self, "GET")

            def do_POST(self):
                standin._handle(self, "POST")

            def do_HEAD(self):
                self.send_response(200)
                self.end_headers()

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.host, self.port = self.server.server_address[:2]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> OllamaStandin:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- protocol -------------------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        body: dict = {}
        if method == "POST":
            length = int(h.headers.get("Content-Length") or 0)
            raw = h.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                return self._json(h, 400, {"error": "invalid JSON"})
        path = h.path.split("?", 1)[0]
        self.requests.append((method, path, body))
        routes = {
            ("GET", "/"): lambda: self._text(h, 200, "Ollama is running"),
            ("GET", "/api/version"): lambda: self._json(h, 200, {"version": VERSION}),
            ("GET", "/api/tags"): lambda: self._json(h, 200, {"models": [self._tag(n) for n in self.local]}),
            ("POST", "/api/show"): lambda: self._show(h, body),
            ("POST", "/api/pull"): lambda: self._pull(h, body),
            ("POST", "/api/chat"): lambda: self._chat(h, body),
            ("POST", "/v1/chat/completions"): lambda: self._openai_chat(h, body),
            ("GET", "/v1/models"): lambda: self._json(
                h, 200, {"object": "list", "data": [{"id": n, "object": "model", "owned_by": "library"} for n in self.local]}
            ),
        }
        route = routes.get((method, path))
        if route is None:
            return self._json(h, 404, {"error": f"404 page not found: {path}"})
        try:
            route()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _resolve(self, name: str | None) -> str | None:
        if not name:
            return None
        for candidate in (name, name.removesuffix(":latest"), f"{name}:latest"):
            if candidate in self.local:
                return candidate
        return None

    def _tag(self, name: str) -> dict:
        m = self.local[name]
        return {
            "name": name, "model": name, "modified_at": "2024-11-01T10:00:00Z", "size": m["size"], "digest": _digest(name)[7:],
            "details": {
                "parent_model": "", "format": "gguf", "family": m["family"], "families": [m["family"]],
                "parameter_size": m["parameter_size"], "quantization_level": m["quantization_level"],
            },
        }

    def _show(self, h, body: dict) -> None:
        name = self._resolve(body.get("model") or body.get("name"))
        if name is None:
            return self._json(h, 404, {"error": f"model '{body.get('model')}' not found"})
        m = self.local[name]
        self._json(h, 200, {
            "modelfile": f"FROM {name}\n", "parameters": "stop \"<|im_end|>\"", "template": "{{ .Prompt }}",
            "details": self._tag(name)["details"], "model_info": m["model_info"], "capabilities": ["completion"],
            "modified_at": "2024-11-01T10:00:00Z",
        })

    def _pull(self, h, body: dict) -> None:
        name = body.get("model") or body.get("name") or ""
        if ":" not in name:
            name += ":latest"
        stream = body.get("stream", True)
        known = name in self.library
        if not stream:
            if not known:
                return self._json(h, 500, {"error": "pull model manifest: file does not exist"})
            self.local[name] = self.library[name]
            return self._json(h, 200, {"status": "success"})
        self._start_stream(h)
        self._line(h, {"status": "pulling manifest"})
        if not known:
            return self._line(h, {"error": "pull model manifest: file does not exist"})
        total = self.library[name]["size"]
        digest = _digest(name)
        for step in range(0, 11):
            self._line(h, {"status": f"pulling {digest[7:19]}", "digest": digest, "total": total, "completed": total * step // 10})
            time.sleep(0.01)
        for status in ("verifying sha256 digest", "writing manifest", "success"):
            self._line(h, {"status": status})
        self.local[name] = self.library[name]

    def _backend_headers(self) -> dict:
        return {"Authorization": f"Bearer {self.backend_key}"} if self.backend_key else {}

    def _chat(self, h, body: dict) -> None:
        name = self._resolve(body.get("model"))
        if name is None:
            return self._json(h, 404, {"error": f"model \"{body.get('model')}\" not found, try pulling it first"})
        options = body.get("options") or {}
        request = {
            "model": name,
            "messages": [{"role": m.get("role", "user"), "content": m.get("content") or ""} for m in body.get("messages", [])],
            "stream": True,
            "max_tokens": options.get("num_predict") if options.get("num_predict", -1) > 0 else 256,
        }
        if "temperature" in options:
            request["temperature"] = options["temperature"]
        if options.get("stop"):
            request["stop"] = options["stop"]
        started = time.monotonic()
        pieces: list[str] = []
        stream = body.get("stream", True)
        if stream:
            self._start_stream(h)
        with httpx.stream("POST", f"{self.backend_url}/chat/completions", json=request, headers=self._backend_headers(), timeout=120) as r:
            if r.status_code != 200:
                r.read()
                error = {"error": f"backend: {r.status_code} {r.text[:200]}"}
                return self._line(h, error) if stream else self._json(h, 500, error)
            for line in r.iter_lines():
                if not line.startswith("data:") or line.strip() == "data: [DONE]":
                    continue
                chunk = json.loads(line[5:])
                delta = (chunk.get("choices") or [{}])[0].get("delta", {}).get("content")
                if delta:
                    pieces.append(delta)
                    if stream:
                        self._line(h, {"model": name, "created_at": _now(), "message": {"role": "assistant", "content": delta}, "done": False})
        final = {
            "model": name, "created_at": _now(), "message": {"role": "assistant", "content": "" if stream else "".join(pieces)},
            "done_reason": "stop", "done": True, "total_duration": int((time.monotonic() - started) * 1e9),
            "load_duration": 0, "prompt_eval_count": 1, "prompt_eval_duration": 1, "eval_count": len(pieces), "eval_duration": 1,
        }
        if stream:
            self._line(h, final)
        else:
            self._json(h, 200, final)

    def _openai_chat(self, h, body: dict) -> None:
        name = self._resolve(body.get("model"))
        if name is None:
            return self._json(h, 404, {"error": {"message": f"model \"{body.get('model')}\" not found, try pulling it first"}})
        request = dict(body, model=name)
        with httpx.stream("POST", f"{self.backend_url}/chat/completions", json=request, headers=self._backend_headers(), timeout=120) as r:
            h.send_response(r.status_code)
            h.send_header("Content-Type", r.headers.get("content-type", "application/json"))
            h.end_headers()
            for chunk in r.iter_raw():
                h.wfile.write(chunk)
                h.wfile.flush()

    # --- wire helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _send(h, status: int, content_type: str, data: bytes) -> None:
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    @classmethod
    def _json(cls, h, status: int, payload: dict) -> None:
        cls._send(h, status, "application/json; charset=utf-8", json.dumps(payload).encode())

    @classmethod
    def _text(cls, h, status: int, text: str) -> None:
        cls._send(h, status, "text/plain; charset=utf-8", text.encode())

    @staticmethod
    def _start_stream(h) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/x-ndjson")
        h.end_headers()

    @staticmethod
    def _line(h, payload: dict) -> None:
        h.wfile.write(json.dumps(payload).encode() + b"\n")
        h.wfile.flush()


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "serve":
        print("usage: ollama serve   (oi_local test stand-in)", file=sys.stderr)
        return 2
    hostport = os.environ.get("OLLAMA_HOST", "127.0.0.1:11434").split("://")[-1]
    host, _, port = hostport.rpartition(":")
    local = tuple(filter(None, os.environ.get("OLLAMA_STANDIN_LOCAL", "").split(",")))
    standin = OllamaStandin(
        backend_url=os.environ.get("OLLAMA_STANDIN_BACKEND", "http://127.0.0.1:9/v1"),
        backend_key=os.environ.get("OLLAMA_STANDIN_KEY") or None,
        host=host or "127.0.0.1", port=int(port or 11434), local_models=local,
    )
    print(f"Listening on {standin.url} (version {VERSION})", flush=True)
    try:
        standin.server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
