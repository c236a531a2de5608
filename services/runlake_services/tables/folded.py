"""How far a compactor in another process has folded, as stored with the tables.

The Spark compactor's last commit of each micro-batch, the ``events`` append, carries the
cumulative Kafka offsets folded so far in the commit's ``userMetadata`` (JSON, key
:data:`PROGRESS_KEY`, value a ``runlake.positions`` token). Whoever sees that commit can
read every record up to those offsets in every table. Writer (spark_jobs/delta_tables.py)
and reader (query/follower.py) share this one definition.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from runlake.positions import Vector, format_vector

__all__ = [
    "PROGRESS_KEY",
    "Folded",
    "folded_from_metadata",
    "latest_folded",
    "progress_metadata",
]

PROGRESS_KEY = "runlake.folded"


def progress_metadata(folded: Vector, batch_id: int) -> str:
    """The userMetadata of an ``events`` commit: the folded vector and its micro-batch."""
    return json.dumps({PROGRESS_KEY: format_vector(folded), "batch_id": batch_id})


def folded_from_metadata(metadata: str | None) -> str | None:
    """The folded token in a commit's userMetadata; None if it carries none."""
    if not metadata:
        return None
    try:
        value = json.loads(metadata).get(PROGRESS_KEY)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Folded:
    """A progress-carrying commit: the token, and when it was committed (ms since epoch)."""

    token: str
    version: int
    timestamp_ms: int


def latest_folded(history: Iterable[Mapping[str, Any]]) -> Folded | None:
    """The newest commit that carries a token (commit infos, in any order)."""
    best: Folded | None = None
    for commit in history:
        token = folded_from_metadata(commit.get("userMetadata"))
        version = int(commit.get("version", -1))
        if token is not None and (best is None or version > best.version):
            best = Folded(token, version, int(commit.get("timestamp", 0)))
    return best
