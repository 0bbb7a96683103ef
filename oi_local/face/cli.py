"""Argument parsing and dispatch only. Heavy work lives in oi_local.face.commands.*, imported when chosen.

The settings' flags come from oi_local.settings; a parsed command line leaves this module as an Invocation
(canonical setting -> checked value, plus the command's own options), never as an argparse Namespace.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from oi_local import __version__, providers, settings
from oi_local.errors import OiLocalError
from oi_local.face.invocation import Invocation

CHAT_PROG = "interpreter"
SUBCOMMAND_PROG = "oi-local"


class UsageError(OiLocalError):
    """A command line argparse cannot read (an unknown flag, a missing argument)."""

    exit_code = 2


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one paragraph instead of the usage block and a line at the end."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}. Run `{self.prog} --help` to see what it takes.")

    def print_help(self, file=None) -> None:
        # argparse drops write errors of its help; a closed pipe must reach main like any other output's
        (file or sys.stdout).write(self.format_help())


def _chat_parser(prog: str = CHAT_PROG) -> argparse.ArgumentParser:
    p = _Parser(
        prog=prog,
        description="A private code-running assistant on a model that runs on this machine.",
        epilog="Subcommands: `oi-local hardware`, `oi-local models ...`, `oi-local serve MODEL` (`oi-local --help`).",
    )
    p.add_argument("message", nargs="?", help="run this one task and exit")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    groups = {title: p.add_argument_group(title) for title in ("local models", "model settings", "configuration", "options")}

    local = groups["local models"]
    local.add_argument("-l", "--local", action="store_true", help="run the local explorer: pick a provider and a model, then chat")
    local.add_argument("--local_models", action="store_true", help="manage downloaded models")
    local.add_argument("--provider", choices=providers.names(), help="with --local: the provider, skipping the menu")

    conf = groups["configuration"]
    conf.add_argument("--profiles", action="store_true", help="show the profiles folder")
    conf.add_argument("-p", "--profile", help="profile name or path")
    conf.add_argument("--conversations", action="store_true", help="pick a saved conversation and resume it")
    settings.add_flags(p, settings.CHAT, groups)
    return p


def _add_hardware(sub) -> None:
    hw = sub.add_parser("hardware", help="show what this machine has: RAM, GPUs, disk, CPU features")
    hw.add_argument("--json", action="store_true")


def _add_models(sub) -> None:
    models = sub.add_parser("models", help="list, download, verify, delete or import models")
    msub = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = msub.add_parser("list", help="models on disk, and with --all the catalog with fit")
    ls.add_argument("--all", action="store_true", help="also list catalog models with whether they fit")
    ls.add_argument("--json", action="store_true")
    dl = msub.add_parser("download", help="download a catalog model")
    dl.add_argument("model_id")
    dl.add_argument("--json", action="store_true")
    vf = msub.add_parser("verify", help="check a model's sha256 (--trust: pin it, so a llamafile may run)")
    vf.add_argument("model_id")
    vf.add_argument("--trust", action="store_true",
                    help="record the file's sha256 as trusted by you (shown first), so it may be run")
    vf.add_argument("--json", action="store_true")
    rm = msub.add_parser("delete", help="delete a downloaded model")
    rm.add_argument("model_id")
    rm.add_argument("-y", "--yes", action="store_true", help="do not ask")
    rm.add_argument("--json", action="store_true")
    im = msub.add_parser("import", help="register an existing .gguf or .llamafile")
    im.add_argument("path")
    im.add_argument("--id", dest="model_id")
    im.add_argument("--copy", action="store_true",
                    help="copy the file into the models folder (copy-on-write where the filesystem can)")
    im.add_argument("--link", action="store_true",
                    help="hard-link a read-only file into the models folder instead of copying it")
    im.add_argument("--json", action="store_true")


def _add_serve(sub) -> None:
    serve = sub.add_parser("serve", help="start only the OpenAI-compatible server for a model")
    serve.add_argument("model", help="catalog id or path to a .gguf/.llamafile")
    settings.add_flags(serve, settings.SERVE)
    serve.add_argument("--verify", action="store_true", help="hash the model file in full before serving it")


def _add_bundle(sub) -> None:
    parser = sub.add_parser("bundle", help="an offline bundle: create one, verify one, self-check an install")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="pack oi_local, its wheels and models into one file for an offline machine")
    create.add_argument("--model", dest="models", action="append", default=[], metavar="ID",
                        help="a model from the models folder (repeat for more)")
    create.add_argument("--ollama-model", dest="ollama_models", action="append", default=[], metavar="NAME",
                        help="an Ollama model from OLLAMA_MODELS or ~/.ollama/models, e.g. llama3.2:1b (repeat for more)")
    create.add_argument("--no-models", action="store_true", help="the program only")
    create.add_argument("-o", "--output", type=Path, default=Path("oi_local-bundle.tar"),
                        help="the bundle file (default: oi_local-bundle.tar)")
    create.add_argument("--compress", nargs="?", const="auto", choices=("auto", "zstd", "gzip"),
                        help="compress the tar: zstd where this Python has it, else gzip (or name one)")
    create.add_argument("--python-version", help="wheels for another Python, e.g. 3.12 (default: this one)")
    create.add_argument("--platform", dest="platforms", action="append", default=[], metavar="TAG",
                        help="wheels for another machine, e.g. manylinux_2_28_aarch64 (needs --llama-wheel)")
    create.add_argument("--llama-wheel", type=Path, metavar="PATH",
                        help="a llama-cpp-python wheel built for the target (default: the one installed here)")
    create.add_argument("--json", action="store_true", help="print the result as JSON")

    verify = actions.add_parser("verify", help="check a bundle file or folder against its manifest, installing nothing")
    verify.add_argument("path", type=Path, metavar="FILE|DIR")
    verify.add_argument("--json", action="store_true")

    check = actions.add_parser("self-check", help="start the server on a model and get one reply (what install.sh runs)")
    check.add_argument("model", nargs="?", help="a model id (none: only load llama.cpp)")


# name -> (adds its parser, the module whose run(invocation) carries it out); in `oi-local --help` order
SUBCOMMANDS: dict[str, tuple[Callable[..., None], str]] = {
    "hardware": (_add_hardware, "oi_local.face.commands.hardware_cmd"),
    "models": (_add_models, "oi_local.face.commands.models_cmd"),
    "serve": (_add_serve, "oi_local.face.commands.serve_cmd"),
    "bundle": (_add_bundle, "oi_local.face.commands.bundle_cmd"),
}


def _subcommand_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=SUBCOMMAND_PROG,
        description="Local models for the interpreter: what this machine has, which models fit, and a server for one.",
        epilog="Without a command, oi-local chats like `interpreter` and takes its flags (`interpreter --help`).",
    )
    p.add_argument("--version", action="version", version=f"oi_local {__version__}")
    sub = p.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")
    for add_parser, _module in SUBCOMMANDS.values():
        add_parser(sub)
    return p


def program_name(argv0: str) -> str:
    """`oi-local` when started as oi-local, else `interpreter`."""
    return SUBCOMMAND_PROG if Path(argv0).name.startswith(SUBCOMMAND_PROG) else CHAT_PROG


def parse(argv: Sequence[str], prog: str = CHAT_PROG) -> Invocation:
    """Read a command line into an Invocation, every setting checked against its declaration (a bad value
    is a SettingError here, before anything starts). `prog`: the program the user ran."""
    argv = list(argv)
    wants_subcommands = prog == SUBCOMMAND_PROG and argv[:1] in (["-h"], ["--help"])
    if (argv and argv[0] in SUBCOMMANDS) or wants_subcommands:
        parsed = vars(_subcommand_parser().parse_args(argv))
        command, kind = parsed.pop("command"), settings.SERVE if argv[0] == "serve" else None
    else:
        parsed = vars(_chat_parser(prog).parse_args(argv))
        command, kind = None, settings.CHAT
    if kind is None:
        return Invocation(command, options=parsed)
    flag_names = settings.dests(kind)
    values = settings.from_flags(kind, parsed, prog=f"{SUBCOMMAND_PROG} {command}" if command else prog)
    options = {name: value for name, value in parsed.items() if name not in flag_names}
    return Invocation(command, settings=values, options=options, flag_names=flag_names)


def dispatch(invocation: Invocation) -> int:
    import importlib

    if invocation.command is not None:
        return importlib.import_module(SUBCOMMANDS[invocation.command][1]).run(invocation)
    if invocation.version:
        print(f"oi_local {__version__}")
        return 0
    if invocation.local_models:
        from oi_local.face.commands import models_cmd

        return models_cmd.interactive(invocation)
    if invocation.local or invocation.provider:
        from oi_local.face.commands import local_cmd

        return local_cmd.run(invocation)
    from oi_local.face.commands import chat_cmd

    return chat_cmd.run(invocation)


def _stdout_closed() -> int:
    """The reader of our output went away (`... | head`): stop quietly, as a program stopped by SIGPIPE looks
    to its shell, and send what is still buffered nowhere instead of into a traceback at Python's exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return 128 + signal.SIGPIPE


def _stdout_is_devnull() -> bool:
    try:
        return os.path.samestat(os.fstat(sys.stdout.fileno()), os.stat(os.devnull))
    except (OSError, ValueError):
        return False


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    prog = prog or program_name(sys.argv[0])
    started_on_devnull = _stdout_is_devnull()
    try:
        try:
            return dispatch(parse(sys.argv[1:] if argv is None else argv, prog))
        finally:
            sys.stdout.flush()  # here a closed pipe is caught below, at Python's exit it is a traceback
    except BrokenPipeError:
        return _stdout_closed()
    except SystemExit as exit:
        # rich meets a closed pipe the same way (stdout onto /dev/null), then exits with 1: say it alike
        if exit.code == 1 and not started_on_devnull and _stdout_is_devnull():
            return _stdout_closed()
        raise
    except OiLocalError as error:
        print(f"Error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        return 130


def console_main() -> None:
    """The console scripts' entry: main(), then an exit that skips tearing down every imported module.

    With litellm, pydantic and jupyter_client loaded, Python's own teardown frees their objects one by one:
    1.2-1.5 s of a one-shot command's time on this machine, after everything was done. Everything that should
    happen at exit still does: other threads are joined as Python would, then the atexit handlers run (the
    kernel's and the servers' stop hooks), then the output is flushed. Only the modules' teardown is skipped."""
    import atexit
    import threading

    try:
        code: object = main()
    except SystemExit as exit:  # argparse's usage errors and --help
        code = exit.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    threading._shutdown()  # what Python's exit does first: the thread pools' exit hooks, then join the rest
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    console_main()
