"""Commands run in a new network namespace whose only interface is lo (`unshare -n`, then `ip link set lo up`)."""

from __future__ import annotations

import shutil
import subprocess

# `sh -c SCRIPT "$0" "$@"`: the command's own words follow the script, nothing is quoted by hand
LOOPBACK_ONLY = ["unshare", "-n", "--", "sh", "-c", 'ip link set lo up && exec "$0" "$@"']

def can_unshare() -> str | None:
    """None when this machine can make such a namespace, else why not (a reason to skip)."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "unshare or ip is not installed"
    probe = subprocess.run(["unshare", "-n", "--", "sh", "-c", "ip link set lo up"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create a network namespace here: {probe.stderr.strip()}"
    return None

def loopback_only(command: list[str]) -> list[str]:
    """The command run inside a loopback-only namespace."""
    return [*LOOPBACK_ONLY, *command]

