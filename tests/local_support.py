"""Helpers for the local-mode tests (H7): real servers on the fixed LM Studio / Jan ports, a child environment."""

from __future__ import annotations

import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INTERPRETER = ROOT / ".venv" / "bin" / "interpreter"


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_on_fixed_port(start_raw_server, model_path: Path, port: int, what: str, **kw):
    """A real llama.cpp server on a port the real product uses (1234 LM Studio, 1337 Jan); skip if taken."""
    if not port_is_free(port):
        pytest.skip(f"port {port} is in use by another program, so the {what} stand-in cannot listen there")
    return start_raw_server(model_path, port=port, **kw)


class StaticJSONServer:
    """A loopback HTTP server answering GETs from a dict {path: payload} (for one product API's shape)."""

    def __init__(self, routes: dict[str, object], port: int = 0) -> None:
        table = routes

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                payload = table.get(self.path.split("?")[0])
                data = json.dumps(payload if payload is not None else {"error": "not found"}).encode()
                self.send_response(200 if payload is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def base_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for a child `interpreter`: an isolated home, nothing reaching out."""
    env = {
        "OI_LOCAL_HOME": str(home),
        "HOME": str(home / "user"),
        "PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin",
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "HF_ENDPOINT": os.environ.get("HF_ENDPOINT", "http://127.0.0.1:9"),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env
