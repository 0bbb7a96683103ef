"""The built-in languages. Each module owns one; `default_languages()` is the Computer's starting list."""

from __future__ import annotations


def default_languages() -> list[type]:
    from oi_local.computer.languages.html import HTML
    from oi_local.computer.languages.javascript import JavaScript
    from oi_local.computer.languages.python import Python
    from oi_local.computer.languages.scripted import AppleScript, PowerShell, R
    from oi_local.computer.languages.shell import Shell

    return [Python, Shell, JavaScript, HTML, R, AppleScript, PowerShell]
