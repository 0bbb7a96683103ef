"""Showing a folder to the user: in the platform's file manager, where there is a desktop to show it on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from oi_local import env


def desktop_opener() -> list[str] | None:
    """The platform's file-manager command, or None without a desktop (a server, ssh, a container)."""
    if sys.platform == "darwin":
        return ["open"]
    if sys.platform.startswith("win"):
        return ["explorer"]
    if (env.get(env.DISPLAY) or env.get(env.WAYLAND_DISPLAY)) and shutil.which("xdg-open"):
        return ["xdg-open"]
    return None


def open_folder(folder: Path) -> None:
    """Open the folder in the file manager when there is one; never fails (the path is printed anyway)."""
    opener = desktop_opener()
    if opener is None:
        return
    try:
        subprocess.Popen([*opener, str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    except OSError:
        pass
