"""Network audit for tests/test_offline.py, loaded by every Python process that has this folder on PYTHONPATH
(the `interpreter` under test and every Python child it starts: the llama.cpp server, kernels).

Appends one JSON line per process start, and one per socket connect or name lookup that is not loopback,
to the file named by OI_AUDIT_FILE.
"""

import ipaddress
import json
import os
import sys

_FILE = os.environ.get("OI_AUDIT_FILE")


def _write(record):
    record["pid"] = os.getpid()
    try:
        with open(_FILE, "a", encoding="utf-8") as out:
            out.write(json.dumps(record, default=str) + "\n")
    except OSError:
        pass


def _loopback(host):
    if host is None:
        return True  # getaddrinfo(None, port): the local wildcard, no lookup
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").split("%", 1)[0]
    if host in ("localhost", "localhost.localdomain", ""):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: looking it up may leave the machine
    if address.is_loopback:
        return True
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(mapped and mapped.is_loopback)


def _hook(event, args):
    if event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple) and address and not _loopback(address[0]):
            _write({"event": event, "host": address[0], "port": address[1] if len(address) > 1 else None})
    elif event == "socket.getaddrinfo":
        if not _loopback(args[0]):
            _write({"event": event, "host": args[0], "port": args[1]})
    elif event in ("socket.gethostbyname", "socket.gethostbyaddr"):
        if not _loopback(args[0]):
            _write({"event": event, "host": args[0]})
    elif event == "socket.sendto":
        address = args[1]
        if isinstance(address, tuple) and address and not _loopback(address[0]):
            _write({"event": event, "host": address[0]})


if _FILE:
    _write({"event": "start", "argv": list(getattr(sys, "orig_argv", sys.argv))})
    sys.addaudithook(_hook)
