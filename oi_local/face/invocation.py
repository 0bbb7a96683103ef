"""Invocation: what one command line asked for, as a plain read-only value (argparse stays in cli.py)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

_FIELDS = ("command", "settings", "options", "flag_names")


class Invocation(Mapping[str, Any]):
    """The command, the settings given on its command line, and the command's own options.

    As a mapping it is the settings: canonical name (oi_local.settings) -> value, only those the user gave
    (plus the defaults of settings only the command line sets, such as --host), all already checked. A
    command reads one value by its flag's name too (`invocation.port`, `invocation.context_window`: None when
    not given). Nothing changes it: a command that needs other values makes its own.

    (A plain class rather than a frozen dataclass: `interpreter --help` builds one, and importing
    dataclasses would cost it a fifth of its time.)
    """

    __slots__ = _FIELDS

    command: str | None  # "hardware", "models", "serve", ...; None: the chat (`interpreter`)
    settings: Mapping[str, Any]
    options: Mapping[str, Any]  # message, profile, json, model_id, ...
    flag_names: Mapping[str, str]  # flag name (dest) -> canonical setting

    def __init__(
        self,
        command: str | None = None,
        settings: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        flag_names: Mapping[str, str] | None = None,
    ) -> None:
        object.__setattr__(self, "command", command)
        for name, value in (("settings", settings), ("options", options), ("flag_names", flag_names)):
            object.__setattr__(self, name, MappingProxyType(dict(value or {})))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"an Invocation cannot be changed (tried to set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"an Invocation cannot be changed (tried to delete {name!r})")

    def __getitem__(self, name: str) -> Any:
        return self.settings[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.settings)

    def __len__(self) -> int:
        return len(self.settings)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in _FIELDS:
            raise AttributeError(name)
        if name in self.options:
            return self.options[name]
        if name in self.flag_names:
            return self.settings.get(self.flag_names[name])
        raise AttributeError(f"the {self.command or 'chat'} command has no option {name!r}")

    def __repr__(self) -> str:
        return f"Invocation(command={self.command!r}, settings={dict(self.settings)!r}, options={dict(self.options)!r})"
