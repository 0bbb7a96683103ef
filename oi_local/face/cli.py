"""Argument parsing and dispatch only. Heavy work lives in oi_local.face.commands.*, imported when chosen."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from oi_local import __version__, providers
from oi_local.errors import OiLocalError

SUBCOMMANDS = ("hardware", "models", "serve")


def _chat_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="interpreter",
        description="A private code-running assistant on a model that runs on this machine.",
        epilog="Subcommands: `oi-local hardware`, `oi-local models ...`, `oi-local serve MODEL` (each has --help).",
    )
    p.add_argument("message", nargs="?", help="run this one task and exit")
    p.add_argument("--version", action="store_true", help="print the version and exit")

    local = p.add_argument_group("local models")
    local.add_argument("-l", "--local", action="store_true", help="run the local explorer: pick a provider and a model, then chat")
    local.add_argument("--local_models", action="store_true", help="manage downloaded models")
    local.add_argument("--provider", choices=providers.names(), help="with --local: the provider, skipping the menu")
    local.add_argument("--fresh_server", action="store_true", help="start a new server even if a matching one is running")

    model = p.add_argument_group("model settings")
    model.add_argument("-m", "--model", help="model id, path, or litellm model name")
    model.add_argument("-t", "--temperature", type=float)
    model.add_argument("-c", "--context_window", type=int)
    model.add_argument("-x", "--max_tokens", type=int)
    model.add_argument("-xo", "--max_output", type=int, help="characters of code output kept for the model")
    model.add_argument("-ab", "--api_base")
    model.add_argument("-ak", "--api_key")
    model.add_argument("-av", "--api_version")
    model.add_argument("-lsf", "--llm_supports_functions", action="store_true", default=None)
    model.add_argument("--no-llm_supports_functions", dest="llm_supports_functions", action="store_false")
    model.add_argument("-lsv", "--llm_supports_vision", action="store_true", default=None)

    conf = p.add_argument_group("configuration")
    conf.add_argument("--profiles", action="store_true", help="show the profiles folder")
    conf.add_argument("-p", "--profile", help="profile name or path")
    conf.add_argument("-ci", "--custom_instructions")
    conf.add_argument("-s", "--system_message")
    conf.add_argument("--conversations", action="store_true", help="pick a saved conversation and resume it")

    opts = p.add_argument_group("options")
    opts.add_argument("--safe_mode", choices=("off", "ask", "auto"))
    opts.add_argument("-y", "--auto_run", action="store_true", default=None, help="run code without asking")
    opts.add_argument("--loop", action="store_true", default=None)
    opts.add_argument("-v", "--verbose", action="store_true", default=None)
    opts.add_argument("-b", "--max_budget", type=float)
    opts.add_argument("-ml", "--multi_line", action="store_true", default=None)
    opts.add_argument("--offline", action="store_true", default=None, help="never open a non-loopback connection")
    opts.add_argument("--plain", action="store_true", help="print without rich formatting")
    return p


def _subcommand_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oi-local")
    sub = p.add_subparsers(dest="command", required=True)

    hw = sub.add_parser("hardware", help="show what this machine has")
    hw.add_argument("--json", action="store_true")

    models = sub.add_parser("models", help="manage downloaded models")
    msub = models.add_subparsers(dest="action", required=True)
    ls = msub.add_parser("list", help="models on disk, and with --all the catalog with fit")
    ls.add_argument("--all", action="store_true", help="also list catalog models with whether they fit")
    ls.add_argument("--json", action="store_true")
    dl = msub.add_parser("download", help="download a catalog model")
    dl.add_argument("model_id")
    dl.add_argument("--json", action="store_true")
    vf = msub.add_parser("verify", help="check a model's sha256")
    vf.add_argument("model_id")
    vf.add_argument("--json", action="store_true")
    rm = msub.add_parser("delete", help="delete a downloaded model")
    rm.add_argument("model_id")
    rm.add_argument("-y", "--yes", action="store_true", help="do not ask")
    rm.add_argument("--json", action="store_true")
    im = msub.add_parser("import", help="register an existing .gguf or .llamafile")
    im.add_argument("path")
    im.add_argument("--id", dest="model_id")
    im.add_argument("--copy", action="store_true", help="copy the file into the models folder")
    im.add_argument("--json", action="store_true")

    serve = sub.add_parser("serve", help="start only the OpenAI-compatible server for a model")
    serve.add_argument("model", help="catalog id or path to a .gguf/.llamafile")
    serve.add_argument("--runner", choices=("llamacpp", "llamafile"), help="default: from the model's format")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int)
    serve.add_argument("-c", "--context_window", type=int)
    serve.add_argument("-ngl", "--n_gpu_layers", type=int)
    serve.add_argument("--api_key")
    serve.add_argument("--fresh_server", action="store_true")
    return p


def parse(argv: Sequence[str]) -> argparse.Namespace:
    if argv and argv[0] in SUBCOMMANDS:
        return _subcommand_parser().parse_args(list(argv))
    args = _chat_parser().parse_args(list(argv))
    args.command = None
    return args


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "hardware":
        from oi_local.face.commands import hardware_cmd

        return hardware_cmd.run(args)
    if args.command == "models":
        from oi_local.face.commands import models_cmd

        return models_cmd.run(args)
    if args.command == "serve":
        from oi_local.face.commands import serve_cmd

        return serve_cmd.run(args)
    if args.version:
        print(f"oi_local {__version__}")
        return 0
    if args.local_models:
        from oi_local.face.commands import models_cmd

        return models_cmd.interactive(args)
    if args.local or args.provider:
        from oi_local.face.commands import local_cmd

        return local_cmd.run(args)
    from oi_local.face.commands import chat_cmd

    return chat_cmd.run(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        return dispatch(args)
    except OiLocalError as error:
        print(f"Error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
