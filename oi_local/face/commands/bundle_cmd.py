"""`oi-local bundle create|verify|self-check`: the offline bundle.

    oi-local bundle create --model smollm2-135m [--model ...] [-o oi_local-bundle.tar]
    oi-local bundle verify FILE|DIR
    oi-local bundle self-check [MODEL]      (install.sh runs it: the server on MODEL, one reply)
"""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
import time

from oi_local.errors import OiLocalError
from oi_local.face.invocation import Invocation


def run(args: Invocation) -> int:
    if args.action == "create":
        return _create(args, sys.argv[1:])
    if args.action == "verify":
        return _verify(args)
    if args.action == "self-check":
        return self_check(args.model)
    raise OiLocalError(f"Unknown bundle action {args.action!r}; use create, verify or self-check.")


def _progress(enabled: bool):
    def factory(label: str, total: int):
        if not enabled:
            return contextlib.nullcontext(None)
        from oi_local.models.download import progress_bar

        return progress_bar(label, total)

    return factory


def _say(message: str) -> None:
    print(f"bundle: {message}", file=sys.stderr, flush=True)


def _create(args: Invocation, argv: list[str]) -> int:
    from oi_local.bundle.create import CreateOptions, create
    from oi_local.files import format_bytes
    from oi_local.machine.paths import app_paths

    options = CreateOptions(
        output=args.output, models=tuple(args.models), ollama_models=tuple(args.ollama_models),
        no_models=args.no_models, python_version=args.python_version, platforms=tuple(args.platforms),
        llama_wheel=args.llama_wheel, compress=args.compress, command=shlex.join(["oi-local", *argv]),
    )
    created = create(options, app_paths(), say=_say, progress=_progress(sys.stderr.isatty() and not args.json))
    payload = created.manifest.payload_bytes
    result = {
        "path": str(created.path), "bytes": created.file_bytes, "compression": created.compression,
        "files": len(created.manifest.files), "payload_bytes": payload, "model_bytes": created.model_bytes,
        "wheel_bytes": created.wheel_bytes, "wheels": len(created.manifest.wheels),
        "models": [m.id for m in created.manifest.models], "ollama_models": [o.name for o in created.manifest.ollama],
        "target": created.manifest.target, "llama_cpp": created.manifest.llama_cpp,
        "seconds": round(created.seconds, 2), "notes": list(created.notes),
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    from oi_local.bundle.target import Target

    target = Target.from_json(created.manifest.target)
    unpack = "tar --zstd -xf" if created.compression == "zstd" else "tar -xf"
    print(f"Wrote {created.path} ({format_bytes(created.file_bytes)}: {len(created.manifest.wheels)} wheels, "
          f"{len(created.manifest.models) + len(created.manifest.ollama)} models) in {created.seconds:.0f} s.")
    print(f"For {target.describe(needs=True)}; llama.cpp {created.manifest.llama_cpp.get('backend')}.")
    for note in created.notes:
        print(f"Note: {note}")
    print(f"On the offline machine:  {unpack} {created.path.name} && oi_local-bundle/install.sh")
    return 0


def _verify(args: Invocation) -> int:
    from oi_local.bundle.verify import verify

    enabled = sys.stderr.isatty() and not args.json
    total = args.path.stat().st_size if args.path.is_file() else None
    with _progress(enabled)("verifying", total) as advance:
        report = verify(args.path, on_bytes=advance)
    if args.json:
        print(json.dumps({"path": str(args.path), "ok": report.ok, "files_checked": report.files_checked,
                          "bytes_checked": report.bytes_checked,
                          "differences": [{"path": d.path, "problem": d.problem} for d in report.differences]}, indent=1))
        return 0 if report.ok else 1
    if report.ok:
        print(report.summary())
        return 0
    print(f"{args.path} does not match its manifest:", file=sys.stderr)
    for difference in report.differences:
        print(f"  {difference.path}: {difference.problem}", file=sys.stderr)
    print("Copy the bundle again from the machine that made it (or make a new one there).", file=sys.stderr)
    return 1


# ---- self-check -------------------------------------------------------------------------------------------------

SELF_CHECK_PROMPT = "Reply with one word: ready"


def self_check(model: str | None) -> int:
    """The installed program works here: llama.cpp loads, and with a model, its server starts and answers."""
    started = time.monotonic()
    if model is None:
        import llama_cpp

        llama_cpp.llama_backend_init()
        print(f"Self-check passed: llama.cpp {llama_cpp.__version__} loads ({time.monotonic() - started:.1f} s).")
        return 0
    import httpx

    from oi_local.env import TIMEOUTS
    from oi_local.face.local_mode import prepare_endpoint
    from oi_local.machine.paths import app_paths
    from oi_local.providers import builtin

    paths = app_paths().ensure()
    provider = _provider_for(model, builtin.load_catalog(paths), paths)
    endpoint, server = prepare_endpoint(provider, model, paths=paths, fresh_server=True, progress=False)
    try:
        headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
        body = {"model": endpoint.model_id, "messages": [{"role": "user", "content": SELF_CHECK_PROMPT}],
                "max_tokens": 8}
        try:
            response = httpx.post(f"{endpoint.api_base}/chat/completions", json=body, headers=headers,
                                  timeout=TIMEOUTS.self_check_reply)
            response.raise_for_status()
            reply = response.json()["choices"][0]["message"]["content"] or ""
        except (httpx.HTTPError, KeyError, IndexError, ValueError) as error:
            raise OiLocalError(f"The server for {model} started but did not answer a chat request ({error}); its log "
                               f"is {endpoint.log_path}.") from error
    finally:
        if server is not None:
            server.stop()
    print(f"Self-check passed: {model} answered {reply.strip()[:60]!r} through its own server on "
          f"{endpoint.api_base} ({time.monotonic() - started:.1f} s; server stopped).")
    return 0


def _provider_for(model: str, entries, paths) -> str:
    from oi_local import providers as builtin_providers
    from oi_local.models import catalog
    from oi_local.providers import builtin

    stored = builtin.store_for(paths, entries).get(model)
    fmt = stored.format if stored is not None else getattr(catalog.find(entries, model), "format", "gguf")
    return builtin_providers.serving(fmt).name
