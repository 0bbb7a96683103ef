"""TCP ports on this machine: is one free, and which one can a server take."""

from __future__ import annotations

import socket

from oi_local.endpoint import is_loopback

LOOPBACK = "127.0.0.1"
__all__ = ["LOOPBACK", "free_port", "is_loopback", "port_is_free"]


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True when nothing listens on host:port and we could bind it right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOOPBACK) -> int:
    """A port the kernel considers free on host (it may be taken by someone else before we use it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
