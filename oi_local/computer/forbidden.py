"""Forbidden commands: a line of code equal to one of them means the code is not run at all.

The seed names the setting (`computer.forbidden_commands`, a list of strings) but ships no list, so the
default below is ours: commands that destroy a machine in one line. Lines are compared after collapsing
runs of whitespace and dropping a trailing `;`, so `rm  -rf /` matches `rm -rf /`. The whole block is
refused (not just the line): running the rest without it could do worse.
"""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_FORBIDDEN_COMMANDS: tuple[str, ...] = (
    "rm -rf /",
    "rm -rf /*",
    "rm -rf ~",
    "rm -rf ~/",
    "rm -rf ~/*",
    "rm -rf --no-preserve-root /",
    "sudo rm -rf /",
    "sudo rm -rf /*",
    "sudo rm -rf --no-preserve-root /",
    ":(){ :|:& };:",
    "chmod -R 777 /",
    "sudo chmod -R 777 /",
    "dd if=/dev/zero of=/dev/sda",
    "dd if=/dev/random of=/dev/sda",
    "mkfs.ext4 /dev/sda",
    "mv ~ /dev/null",
)


def _normal(line: str) -> str:
    return " ".join(line.split()).rstrip(";").strip()


def find_forbidden(code: str, forbidden: Iterable[str]) -> str | None:
    """The first line of `code` that equals a forbidden command, or None."""
    blocked = {_normal(command) for command in forbidden if command and command.strip()}
    if not blocked:
        return None
    for line in code.splitlines():
        if _normal(line) in blocked:
            return line.strip()
    return None


def refusal(line: str) -> str:
    return (
        f"This code was not run: its line `{line}` is one of computer.forbidden_commands. "
        "Do it another way, or ask the user to run it themselves.\n"
    )
