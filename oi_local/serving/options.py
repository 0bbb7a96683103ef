"""The two values a server start takes: what to run (ServerSpec, from a runner) and how (ServerOptions,
from the caller), instead of a relay of keyword arguments through every layer."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

from oi_local.models.fit import Fit
from oi_local.serving.ports import LOOPBACK

CommandBuilder = Callable[[int], Sequence[str]]  # port -> argv (never the API key: see ServerSpec)


@dataclass(frozen=True)
class ServerOptions:
    """How to serve: where, with which key, whether an equal running server may be reused, and how to wait."""

    host: str = LOOPBACK
    port: int | None = None  # None: a free port
    api_key: str | None = None  # None: a new random key
    reuse: bool = True
    threads: int | None = None
    extra_args: tuple[str, ...] = ()  # passed to the server as they are
    progress: bool | None = None  # the spinner; None: when stderr is a terminal
    timeout: float | None = None  # None: from the model's size (launch.ready_timeout)

    @classmethod
    def of(cls, options: ServerOptions | None = None, **changes: object) -> ServerOptions:
        """`options` (or the defaults) with `changes`, named as the fields are; a wrong name is a TypeError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"unknown server option(s): {', '.join(unknown)}")
        if "extra_args" in changes:
            changes["extra_args"] = tuple(changes["extra_args"] or ())  # type: ignore[arg-type]
        return replace(options or cls(), **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ServerSpec:
    """What to run, from a runner. The API key never goes on the command line (any local user can read argv):
    the server reads it from the environment variable `key_env`, or from a 0600 file passed with
    `key_file_flag`."""

    runner: str  # "llamacpp" | "llamafile"
    build_command: CommandBuilder
    model_path: Path
    model_id: str
    fit: Fit
    reuse_args: tuple[str, ...] = ()  # what, besides the model and the fit, makes two servers different
    env: Mapping[str, str] | None = None  # extra variables for the server
    env_remove: tuple[str, ...] = ()  # variables of ours the server must not see (they would override flags)
    key_env: str | None = None
    key_file_flag: str | None = None
    preflight: Callable[[], object] | None = None  # run while the server imports (a check of the model file)
    log_path: Path | None = None  # None: a new log of its own; a path: an earlier failed attempt's log
