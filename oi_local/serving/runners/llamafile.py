"""Serve a model with a llamafile: one executable that holds llama.cpp's server and (usually) the weights.

A llamafile is a program, so it is run only when trusted: its sha256 is known from the catalog or pinned by
the user (the store checks it and says so with `trusted=True`), or this module checks it against
`expected_sha256`. A hub's ETag alone is not enough. It is an APE file that is also a valid
shell script; where the system's binfmt handler intercepts it ("run-detectors: unable to find an
interpreter"), or the file cannot be executed directly, it is run through `sh`, which is what its own
documentation recommends.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from oi_local.errors import OiLocalError
from oi_local.files import sha256_file
from oi_local.machine.paths import AppPaths
from oi_local.models.fit import Fit
from oi_local.serving.logs import open_private
from oi_local.serving.options import ServerOptions, ServerSpec
from oi_local.serving.server import ManagedServer, ServerError, start_server

RUNNER = "llamafile"
WINDOWS_EXE_LIMIT = 4 * 1024**3  # Windows refuses to run an executable of 4 GiB or more
log = logging.getLogger(__name__)


def windows_size_problem(path: Path, size_bytes: int, *, os_name: str = os.name,
                         weights: Path | None = None) -> str | None:
    """The explanation when Windows cannot execute this llamafile (4 GiB or more with weights inside)."""
    if os_name != "nt" or weights is not None or size_bytes < WINDOWS_EXE_LIMIT:
        return None
    return (
        f"{path.name} is {size_bytes / 1024**3:.1f} GB, and Windows cannot run an executable over 4 GB. Use the "
        "external-weights route: download the small llamafile runtime (llamafile.exe from the llamafile "
        "releases) and the model as a .gguf file, then run `llamafile.exe -m model.gguf` (here: pick the "
        "llama.cpp provider with the GGUF of this model, or `oi-local serve model.gguf`)."
    )


# llamafile's server (its llama.cpp server.cpp) reads keys from a file, one a line: `--api-key-file FNAME`.
KEY_FILE_FLAG = "--api-key-file"


def command(executable: Sequence[str], fit: Fit, *, model_id: str, host: str, port: int,
            threads: int | None = None, weights: Path | None = None, extra_args: Sequence[str] = ()) -> list[str]:
    """The server's argv, without the API key (start_server adds `--api-key-file` with a 0600 file)."""
    argv = [
        *executable,
        "--server", "--nobrowser",
        "--host", host,
        "--port", str(port),
        "-c", str(fit.n_ctx),
        "-ngl", str(fit.n_gpu_layers),
        "--alias", model_id,
    ]
    if threads:
        argv += ["-t", str(threads)]
    if weights is not None:
        argv += ["-m", str(weights)]
    return argv + list(extra_args)


def _check_verified(path: Path, verified: bool, expected_sha256: str | None) -> None:
    if verified:
        return
    if expected_sha256:
        actual = sha256_file(path).hexdigest()
        if actual.lower() != expected_sha256.lower():
            raise OiLocalError(
                f"The llamafile {path} does not match its catalog checksum (sha256 {actual}, expected "
                f"{expected_sha256}), so it is not executed. Delete it and download it again "
                "(oi-local models delete ID, then oi-local models download ID)."
            )
        return
    raise OiLocalError(
        f"The llamafile {path} is a program and has not been verified against a sha256 from the catalog or "
        "pinned by you, so it is not executed. If you trust where it came from, pin it: `oi-local models verify ID --trust` shows its "
        "sha256 and records it (ID from `oi-local models list`); or add its publisher's sha256 to the catalog entry."
    )


def start(llamafile_path: Path, fit: Fit, *, paths: AppPaths, model_id: str, options: ServerOptions | None = None,
          trusted: bool = False, verified: bool = False, expected_sha256: str | None = None,
          weights: Path | None = None, os_name: str = os.name, **option_fields: object) -> ManagedServer:
    """Start (or reuse) a llamafile's server; returns once it answers with its key.

    `trusted=True` when the caller (the store) vouches for it (`verified=True`, its older name, the same);
    otherwise `expected_sha256` is checked here, and a llamafile that cannot be checked is refused. `weights`
    runs the llamafile with an external GGUF (`-m`), the route Windows needs for models over 4 GB. `options`
    says how to serve (its fields may also be given by name).
    """
    options = ServerOptions.of(options, **option_fields)
    path = Path(llamafile_path).expanduser()
    if not path.is_file():
        raise OiLocalError(f"The llamafile {path} does not exist. Download it again (oi-local models download ID).")
    size = path.stat().st_size
    problem = windows_size_problem(path, size, os_name=os_name, weights=weights)
    if problem:
        raise OiLocalError(problem)
    _check_verified(path, trusted or verified, expected_sha256)

    def spec(executable: list[str], log_path: Path | None = None) -> ServerSpec:
        def build(use_port: int) -> list[str]:
            return command(executable, fit, model_id=model_id, host=options.host, port=use_port,
                           threads=options.threads, weights=weights, extra_args=options.extra_args)

        return ServerSpec(runner=RUNNER, build_command=build, model_path=weights or path, model_id=model_id, fit=fit,
                          reuse_args=(f"threads={options.threads}", f"weights={weights}", *options.extra_args),
                          key_file_flag=KEY_FILE_FLAG, log_path=log_path)

    try:
        return start_server(spec([str(path)]), paths, options)
    except ServerError as error:
        if os_name == "nt" or error.kind not in ("binfmt", "exec_failed"):
            raise
        log.warning("running %s directly failed (%s); retrying through sh", path, error.kind)
        if error.log_path is not None:
            with contextlib.suppress(OSError), open_private(error.log_path) as out:
                out.write(f"# direct execution failed ({error.kind}); retrying through sh\n".encode())
        return start_server(spec(["sh", str(path)], error.log_path), paths, options)
