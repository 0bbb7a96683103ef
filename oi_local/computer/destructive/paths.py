"""Which paths a destructive command must not be aimed at: /, a home folder, the system's top-level folders,
everything in one of those (a glob such as `/*` or `~/*`), and block devices.

Paths are read as written: `~`, `~user`, `$HOME` and `${HOME}` mean a home folder, a relative path counts
only when the folder it is relative to is known, and a word with any other expansion in it ($VAR, $(...))
is unknown, so it is let through (the check is a seatbelt, not a proof).
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass

SYSTEM_FOLDERS = frozenset({
    "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/opt", "/proc", "/root",
    "/run", "/sbin", "/srv", "/sys", "/usr", "/var", "/snap", "/nix", "/tmp", "/mnt", "/media",
    "/Applications", "/Library", "/System", "/Users", "/Volumes", "/private", "/cores",
    "/var/lib", "/private/var", "/private/etc",
})
HOME_PARENTS = frozenset({"/home", "/Users"})
# Globs inside these are ordinary clean-ups (rm -rf /tmp/*); the folders themselves stay protected.
_SCRATCH_FOLDERS = frozenset({"/tmp", "/var/tmp", "/mnt", "/media", "/Volumes"})
BLOCK_DEVICE = re.compile(
    r"/dev/(sd[a-z]+\d*|hd[a-z]+\d*|vd[a-z]+\d*|xvd[a-z]+\d*|nvme\d+(n\d+(p\d+)?)?|mmcblk\d+(p\d+)?"
    r"|r?disk\d+(s\d+)?|md\d+|dm-\d+|mapper/\S+|disk/\S+|root|mem|kmem|port)"
)
_HOME_VARIABLE = re.compile(r"^(\$HOME|\$\{HOME(?:[:?+=-][^}]*)?\})(?=/|$)")
_GLOB = re.compile(r"[*?\[]")


def home() -> str:
    return os.path.expanduser("~")


def is_block_device(path: str) -> bool:
    return BLOCK_DEVICE.fullmatch(posixpath.normpath(path)) is not None


@dataclass(frozen=True)
class Place:
    """A protected place a path hits: `path` (the folder), its kind ("root", "home" or "system"), and
    whether the path means everything in it (a glob) rather than the folder itself."""

    path: str
    kind: str
    everything: bool = False

    def __str__(self) -> str:
        name = {"root": "/ (the whole machine)", "home": f"the home folder {self.path}"}.get(
            self.kind, f"the system folder {self.path}"
        )
        return f"everything in {name}" if self.everything else name

    @property
    def top_level(self) -> bool:
        """/ or a folder right under it (not /usr/local, /var/lib or a user's home)."""
        return self.kind == "root" or (self.kind == "system" and posixpath.dirname(self.path) == "/")


def protected(word: str, cwd: str | None = None) -> Place | None:
    """The protected place `word` (a path as written) would hit, or None."""
    path = resolve(word, cwd)
    if path is None:
        return None
    parts = path.split("/")
    glob_at = next((i for i, part in enumerate(parts) if _GLOB.search(part)), None)
    if glob_at is None:
        return _place(path)
    parent = "/".join(parts[:glob_at]) or "/"
    place = _place(parent)
    if place is None or parent in _SCRATCH_FOLDERS:
        return None
    broad = _GLOB.sub("", re.sub(r"\[[^]]*\]", "", parts[glob_at])).strip(".") == ""
    if parent == "/" or broad:
        return Place(place.path, place.kind, everything=True)
    return None


def resolve(word: str, cwd: str | None) -> str | None:
    """`word` as an absolute, normal path (globs kept), or None when that cannot be known from the text."""
    text = _HOME_VARIABLE.sub("~", word.strip())
    if not text or "$" in text or "`" in text:
        return None
    if text.startswith("~"):
        user, _, rest = text[1:].partition("/")
        base = home() if not user else posixpath.join("/home", user)
        text = base + ("/" + rest if rest else "")
    elif not text.startswith("/"):
        if cwd is None:
            return None
        text = posixpath.join(cwd, text)
    return posixpath.normpath("/" + text.lstrip("/"))


def _place(path: str) -> Place | None:
    if path == "/":
        return Place(path, "root")
    if path == home() or posixpath.dirname(path) in HOME_PARENTS:
        return Place(path, "home")
    if path in SYSTEM_FOLDERS or posixpath.dirname(path) == "/usr":
        return Place(path, "system")
    return None
