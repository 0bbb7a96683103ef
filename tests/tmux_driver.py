"""The one tmux driver of the tests: a real program in a real terminal, keys in with send-keys, the screen out
with capture-pane.

Each session runs on a tmux server of its own (its own socket, named uniquely): a test never races another
test's (or another concurrent run's) server shutting down. When the command ends, `EXITED-<status>` is
printed and the pane stays open `linger` seconds so that its last screen can still be read.
"""

from __future__ import annotations

import re
import secrets
import shlex
import subprocess
import time
from pathlib import Path

EXIT_MARK = re.compile(r"EXITED-(\d+)")


class Tmux:
    def __init__(self, command: str, *, env: dict[str, str], name: str | None = None, cwd: Path | None = None,
                 width: int = 160, height: int = 50, linger: int = 600) -> None:
        label = re.sub(r"[^A-Za-z0-9_-]+", "-", name or "oi-test")[:40]
        self.name = f"{label}-{secrets.token_hex(4)}"
        self.tmux = ["tmux", "-L", self.name]
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        where = ["-c", str(cwd)] if cwd is not None else []
        subprocess.run(
            [*self.tmux, "new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height), *where,
             f"env {exports} {command}; echo EXITED-$?; sleep {linger}"],
            check=True,
        )

    def screen(self, history: int = 2000) -> str:
        out = subprocess.run([*self.tmux, "capture-pane", "-p", "-J", "-S", f"-{history}", "-t", self.name],
                             capture_output=True, text=True)
        return out.stdout

    def send(self, *keys: str, pause: float = 0.15) -> None:
        """Each key (a tmux key name such as Enter, Down, C-c, or plain text) in turn, with a short pause."""
        for key in keys:
            subprocess.run([*self.tmux, "send-keys", "-t", self.name, key], check=True)
            time.sleep(pause)

    def type(self, text: str, *, enter: bool = False) -> None:
        """Text typed literally (no key names), then Enter when asked."""
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, "-l", text], check=True)
        time.sleep(0.1)
        if enter:
            self.send("Enter", pause=0.0)

    def wait_for(self, text: str, timeout: float = 30.0, *, after: str | int | None = None) -> str:
        """Wait until `text` is on the screen and return the screen. `after`: only the part below the last
        occurrence of this text (a str), or from this character offset (an int), counts."""
        return self._wait(lambda part: text in part, repr(text), timeout, after)

    def wait_re(self, pattern: str, timeout: float = 30.0, *, after: str | int | None = None) -> str:
        """As wait_for, for a regular expression (multi-line mode)."""
        return self._wait(lambda part: re.search(pattern, part, flags=re.M) is not None, repr(pattern), timeout, after)

    def _wait(self, found, what: str, timeout: float, after: str | int | None) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if found(_below(screen, after)):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{what} did not appear within {timeout}s; the screen:\n{screen}")

    def exit_code(self, timeout: float = 120.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = EXIT_MARK.search(self.screen())
            if found:
                return int(found.group(1))
            time.sleep(0.2)
        raise AssertionError(f"the program did not exit within {timeout}s; the screen:\n{self.screen()}")

    def exited(self) -> bool:
        return EXIT_MARK.search(self.screen()) is not None

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)


def _below(screen: str, after: str | int | None) -> str:
    if after is None:
        return screen
    if isinstance(after, int):
        return screen[after:]
    return screen.rsplit(after, 1)[1] if after in screen else ""
