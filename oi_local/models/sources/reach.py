"""Could not talk to the server: the errors every HTTP client in use raises for that, as one short reason.

huggingface_hub changed its HTTP client twice (requests in 0.x, httpx in 1.x, its own fork httpx2 in 2.x),
each with its own exception types, so "cannot reach the hub" is caught by what those types have in common
rather than by one client's class: the RequestError of httpx and httpx2 (connect, read, timeouts, protocol,
too many redirects) and OSError (sockets, requests' errors, huggingface_hub's OfflineModeIsEnabled).
"""

from __future__ import annotations

import errno
import socket
import sys

_CLIENTS = ("httpx", "httpx2")


def client_errors() -> tuple[type[BaseException], ...]:
    """The request-failed base classes of the HTTP clients loaded in this process (one not loaded cannot have
    raised anything, so none is imported here)."""
    types = []
    for name in _CLIENTS:
        module = sys.modules.get(name)
        error = getattr(module, "RequestError", None) if module is not None else None
        if isinstance(error, type):
            types.append(error)
    return tuple(types) or (_NeverRaised,)


def transport_errors() -> tuple[type[BaseException], ...]:
    return (*client_errors(), OSError)


def describe(error: BaseException) -> str:
    """A few words on why no connection could be made (refused, no route, name not found, timed out)."""
    for link in _chain(error):
        if isinstance(link, socket.gaierror):
            return "the host name could not be looked up (no network, or no DNS)"
        if isinstance(link, OSError) and link.errno is not None:
            known = _ERRNO.get(link.errno)
            if known:
                return known
        if "Timeout" in type(link).__name__ or isinstance(link, TimeoutError):
            return "no answer in time (a slow or blocked network)"
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    lowered = first.lower()
    for words, reason in _WORDS:
        if words in lowered:
            return reason
    return f"{type(error).__name__}{': ' + first if first else ''}"


_ERRNO = {
    errno.ECONNREFUSED: "connection refused (nothing listens at that address)",
    errno.ENETUNREACH: "the network is unreachable (no network connection)",
    errno.EHOSTUNREACH: "no route to the host",
    errno.ETIMEDOUT: "the connection timed out",
    errno.ECONNRESET: "the connection was reset",
}
_WORDS = (
    ("connection refused", _ERRNO[errno.ECONNREFUSED]),
    ("network is unreachable", _ERRNO[errno.ENETUNREACH]),
    ("no route to host", _ERRNO[errno.EHOSTUNREACH]),
    ("name or service not known", "the host name could not be looked up (no network, or no DNS)"),
    ("temporary failure in name resolution", "the host name could not be looked up (no network, or no DNS)"),
    ("nodename nor servname", "the host name could not be looked up (no network, or no DNS)"),
    ("timed out", "no answer in time (a slow or blocked network)"),
    ("offline mode is enabled", "offline mode is on (HF_HUB_OFFLINE)"),
)


def _chain(error: BaseException):
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


class _NeverRaised(Exception):
    """Stands for "no HTTP client loaded": an except clause needs at least one type."""
