"""An HTTP transfer into `.downloads/<file>.part`, resumed only when the part belongs to the same file.

Beside the part, `<file>.part.json` holds what the part is of (url, hub ETag, size): a part of another file,
or of another version of it, is started again from zero instead of being resumed into a wrong whole.
"""

from __future__ import annotations

import json

from oi_local.errors import OiLocalError
from oi_local.files import format_bytes, write_json_atomic
from oi_local.models.catalog import CatalogEntry
from oi_local.models.sources import Fetched, SourceUnavailable, Workspace
from oi_local.models.sources.reach import client_errors, describe


def transfer(entry: CatalogEntry, work: Workspace, url: str, *, headers: dict, size: int | None, resume_key: dict,
             record: dict, reference: str | None, reference_kind: str) -> Fetched:
    from oi_local.models.download import fetch

    part = work.part(entry.file)
    meta_path = part.with_suffix(".json")
    if part.exists():
        try:
            previous = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            previous = None
        if previous != resume_key:  # a part of some other file (or version): start over
            part.unlink()
    write_json_atomic(meta_path, resume_key)
    try:
        digest = fetch(url, part, headers=headers, total=size, label=entry.id, progress=work.progress)
    except client_errors() as error:  # an OSError here is the models folder's (a full disk): the store says so
        raise SourceUnavailable(f"the download from {url} failed: {describe(error)}") from error
    except KeyboardInterrupt:
        have = part.stat().st_size if part.exists() else 0
        raise OiLocalError(f"Download of {entry.id} interrupted after {format_bytes(have)}; the part is kept "
                           f"in {part.parent}. Run the same command again to resume.", exit_code=130) from None
    return Fetched(part, digest, reference, reference_kind, record)

