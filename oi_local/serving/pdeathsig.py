"""The parent-death signal (Linux): the kernel signals a child when the thread that forked it ends.

Only the standard library, and nothing imported at module level but `os` and `sys`: the watchdog loads this
file on its own, before it spawns its server, where every millisecond delays the server's start.
"""

from __future__ import annotations

import os
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h
AVAILABLE = sys.platform.startswith("linux")


def parent_death_preexec(signum: int):
    """A preexec_fn that makes the kernel send `signum` to the child when its parent (thread) ends; None where
    the platform has no such signal. Resolved here, in the parent: the child only calls prctl and exits."""
    if not AVAILABLE:
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signum)
        if os.getppid() != parent:  # the parent died before prctl: the signal will never come
            os._exit(1)

    return preexec
