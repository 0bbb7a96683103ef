"""Serve a GGUF model with llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`).

The chat template: with no --chat_format, llama-cpp-python reads `tokenizer.chat_template` from the GGUF
metadata and formats chats with it (llama_cpp/llama.py: a known template maps to its named format, any other
becomes "chat_template.default"). So nothing is passed when the file carries a template; only a file without
one needs `chat_format` (otherwise the server falls back to "llama-2", which is wrong for most models).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from oi_local.env import llama_server_additions, server_threads
from oi_local.machine import threads as thread_plans
from oi_local.machine.paths import AppPaths
from oi_local.models.fit import Fit
from oi_local.serving.options import ServerOptions, ServerSpec
from oi_local.serving.server import ManagedServer, start_server

RUNNER = "llamacpp"
GGML_TYPES = {"q8_0": 8, "q4_0": 2}  # llama-cpp-python's --type_k/--type_v take ggml's type numbers


class _NoChatTemplate(Exception):
    """The GGUF has no chat template: the server must be started again with an explicit chat format."""


def check_model_file(model_path: Path):
    """Raise OiLocalError naming the file when it is missing, not GGUF or truncated; return its header."""
    from oi_local.models.gguf_info import read

    return read(model_path)


# llama-cpp-python's server reads its settings from the environment too (pydantic settings: API_KEY for
# api_key), and uvicorn takes HOST and PORT from it over --host/--port; CONFIG_FILE replaces every flag.
KEY_ENV = "API_KEY"
ENV_OVERRIDING_FLAGS = ("HOST", "PORT", "CONFIG_FILE", "API_KEY")


def tuning_args(threads: int, *, flash_attn: bool = False, kv_type: str = "f16") -> list[str]:
    """The flags that set how the server computes: its threads (decode and prompt batches; the batch default is
    every logical core, spinning: see machine/threads.py), flash attention, the KV cache's type."""
    argv = ["--n_threads", str(threads), "--n_threads_batch", str(threads)]
    if flash_attn:
        argv += ["--flash_attn", "True"]
    if kv_type != "f16":
        argv += ["--type_k", str(GGML_TYPES[kv_type]), "--type_v", str(GGML_TYPES[kv_type])]
    return argv


def command(model_path: Path, fit: Fit, *, model_id: str, host: str, port: int, threads: int,
            chat_format: str | None = None, extra_args: Sequence[str] = (), python: str | None = None) -> list[str]:
    """The server's argv. The API key is not in it: it travels in the environment (KEY_ENV)."""
    argv = [
        python or sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path),
        "--model_alias", model_id,
        "--host", host,
        "--port", str(port),
        "--n_ctx", str(fit.n_ctx),
        "--n_gpu_layers", str(fit.n_gpu_layers),
        *tuning_args(threads, flash_attn=fit.flash_attn, kv_type=fit.kv_type),
        # The server keeps logits for every position by default (n_ctx x vocabulary x 4 bytes): memory the
        # fit does not count and chat completions never use.
        "--logits_all", "False",
        # By default a new request ends the reply being streamed ([DONE] mid-sentence): with a server shared
        # by several runs, requests wait for their turn instead.
        "--interrupt_requests", "False",
    ]
    if chat_format:
        argv += ["--chat_format", chat_format]
    return argv + list(extra_args)


def start(model_path: Path, fit: Fit, *, paths: AppPaths, model_id: str, options: ServerOptions | None = None,
          chat_format: str | None = None, **option_fields: object) -> ManagedServer:
    """Start (or reuse) a llama.cpp server for a GGUF file; returns once it answers with its key.

    `options` says how (host, port, key, reuse, threads, ...); its fields may also be given by name."""
    options = ServerOptions.of(options, **option_fields)
    model_path = Path(model_path).expanduser()
    if not model_path.is_file():
        check_model_file(model_path)  # raises the clear error before anything is spawned
    asked = options.threads or server_threads()
    plan = thread_plans.for_this_machine(asked)

    def preflight() -> None:
        info = check_model_file(model_path)
        if chat_format is None and info.chat_template is None:
            raise _NoChatTemplate

    def launch(fmt: str | None, check) -> ManagedServer:
        def build(use_port: int) -> list[str]:
            return command(model_path, fit, model_id=model_id, host=options.host, port=use_port, threads=plan.threads,
                           chat_format=fmt, extra_args=options.extra_args)

        spec = ServerSpec(runner=RUNNER, build_command=build, model_path=model_path, model_id=model_id, fit=fit,
                          reuse_args=(f"threads={asked or 'auto'}", *(["chat_format=" + fmt] if fmt else []),
                                      *options.extra_args),
                          env=llama_server_additions(passive=plan.passive), env_remove=ENV_OVERRIDING_FLAGS,
                          key_env=KEY_ENV, preflight=check)
        return start_server(spec, paths, options)

    try:
        return launch(chat_format, preflight)
    except _NoChatTemplate:
        # no template in the file: ChatML is what most current instruct models use
        return launch("chatml", None)
