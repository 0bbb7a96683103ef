"""The Hugging Face hub as a source: the file's metadata through huggingface_hub, its bytes by `transfer`.

huggingface_hub is imported only here, and only when a download from the hub is wanted: offline, the
store never reaches this module. Every way the hub library can fail (its own exception types, and any
transport error of whichever HTTP client it uses) becomes one paragraph that says what to do.
"""

from __future__ import annotations

import os
import re
import sys

from oi_local import env
from oi_local.env import TIMEOUTS
from oi_local.errors import OiLocalError
from oi_local.models.catalog import CatalogEntry, Source
from oi_local.models.sources import Fetched, SourceUnavailable, Workspace
from oi_local.models.sources.reach import describe, transport_errors
from oi_local.models.sources.transfer import transfer

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def fetch(entry: CatalogEntry, source: Source, work: Workspace) -> Fetched:
    if not source.repo:
        raise SourceUnavailable("no repo given")
    _quiet_hub()
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    endpoint = (env.get(env.HF_ENDPOINT) or "").rstrip("/")
    revision = source.revision or "main"
    repo_file = source.file or entry.file
    # the endpoint is passed on each call (not read from huggingface_hub's import-time constant), so
    # HF_ENDPOINT set after the hub module was imported is still honoured
    url = hf_hub_url(source.repo, repo_file, revision=revision, endpoint=endpoint)
    where = f"{source.repo}@{revision}/{repo_file} on {endpoint}"
    try:
        meta = get_hf_file_metadata(url, endpoint=endpoint, timeout=TIMEOUTS.hub_metadata)
    except Exception as error:  # every failure is mapped to a paragraph; none leaves as a traceback
        raise hub_problem(error, entry=entry, where=where, endpoint=endpoint) from error

    hub_sha = (meta.etag or "").strip('"').lower()
    hub_sha = hub_sha if _SHA256.match(hub_sha) else None
    if entry.sha256 and hub_sha and entry.sha256 != hub_sha:
        raise OiLocalError(
            f"The hub's file {where} has sha256 {hub_sha}, but the catalog pins {entry.sha256} for "
            f"{entry.id}. The file changed upstream; pin the catalog entry's revision or update its sha256. "
            "Nothing was downloaded."
        )
    size = meta.size or entry.size_bytes
    if size != entry.size_bytes:
        work.check_space(entry, size)
    location = meta.location or url
    headers = build_hf_headers()  # token from HF_TOKEN or the saved login
    if not _same_host(url, location):
        headers.pop("authorization", None)
    record = {"kind": "hf", "repo": source.repo, "revision": revision, "commit": meta.commit_hash}
    reference, kind = (entry.sha256, "catalog") if entry.sha256 else (hub_sha, "hub")
    return transfer(entry, work, location, headers=headers, size=size,
                    resume_key={"url": meta.location, "etag": meta.etag, "size": size}, record=record,
                    reference=reference, reference_kind=kind)


def hub_problem(error: BaseException, *, entry: CatalogEntry, where: str, endpoint: str) -> Exception:
    """The error to raise for a failure of the hub library: an OiLocalError when no other source can help,
    SourceUnavailable when the next source (or a later try) may work."""
    from huggingface_hub import errors

    if isinstance(error, errors.GatedRepoError):
        return OiLocalError(f"{where} is gated: accept its licence on the model page, then set HF_TOKEN to a "
                            "token with read access and try again.")
    if isinstance(error, errors.RepositoryNotFoundError):  # the hub also says this for a private repo
        return OiLocalError(f"{where} was not found, or it is private and needs a token: set HF_TOKEN to a "
                            "token with read access, or check the catalog entry's repo.")
    if isinstance(error, (errors.RevisionNotFoundError, errors.EntryNotFoundError)):
        return OiLocalError(f"{where} was not found ({type(error).__name__}). The catalog entry for "
                            f"{entry.id} may be out of date; pick another model or fix the entry.")
    if isinstance(error, errors.HfHubHTTPError):
        return SourceUnavailable(f"the hub answered {_status_text(error)}", advice=_status_advice(error))
    if isinstance(error, getattr(errors, "OfflineModeIsEnabled", ())):
        return SourceUnavailable("offline mode is on (HF_HUB_OFFLINE)",
                                 advice="unset HF_HUB_OFFLINE (and leave out --offline) on a connected machine")
    if isinstance(error, transport_errors()):
        return SourceUnavailable(f"cannot reach {endpoint}: {describe(error)}")
    return SourceUnavailable(f"the hub library failed ({type(error).__name__}: {_first_line(error)})")


def _status_text(error: BaseException) -> str:
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    if not status:
        return _first_line(error)
    reason = getattr(response, "reason_phrase", None) or getattr(response, "reason", None) or ""
    return f"HTTP {status}{f' ({reason})' if reason else ''}"


def _status_advice(error: BaseException) -> str | None:
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status in (401, 403):
        return "set HF_TOKEN to a token with read access (for a gated model, accept its licence first)"
    if status == 429:
        return "the hub limits how often it is asked: wait a few minutes, or set HF_TOKEN, then try again"
    if status and status >= 500:
        return "the hub has trouble right now: try again later"
    return None


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _quiet_hub() -> None:
    """No telemetry: huggingface_hub otherwise fetches {HF_ENDPOINT}/api/agent-harnesses to build its user agent."""
    os.environ.setdefault(env.HF_HUB_DISABLE_TELEMETRY.name, "1")
    hub_constants = sys.modules.get("huggingface_hub.constants")
    if hub_constants is not None and env.flag(env.HF_HUB_DISABLE_TELEMETRY):
        hub_constants.HF_HUB_DISABLE_TELEMETRY = True


def _same_host(a: str, b: str) -> bool:
    from urllib.parse import urlparse

    return urlparse(a).hostname == urlparse(b).hostname
