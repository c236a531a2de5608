"""Log position tokens: what a write answers and a read may wait for.

Two forms, both plain strings on the wire (``WriteResponse.position``,
``ReadOptions.min_position``):

* the embedded (SQLite) log: a decimal row id, ``"1234"``; totally ordered.
* the Kafka log: a vector of per-partition offsets,
  ``"<topic>:<partition>=<offset>[,<partition>=<offset>…][;<topic>:…]"``, e.g.
  ``"runlake.events:0=12,2=40;runlake.registry:1=3"``. Each offset is the offset of a
  message the writer knows is in the log (inclusive); a reader has *passed* the token once
  it has consumed every listed partition up to and including that offset. Partitions not
  listed impose nothing. Kafka topic names use only ``[a-zA-Z0-9._-]``, so ``: ; = ,``
  cannot clash.

Vector tokens are only partially ordered (two gateways write to different partitions),
so "the later of two" is their element-wise maximum, :func:`later` — the token that
waits for both. This module is the one place that knows the format (docs/decisions/0012).
"""

from __future__ import annotations

__all__ = ["Vector", "compare", "covers", "format_vector", "later", "parse_vector"]

#: (topic, partition) -> offset (inclusive)
Vector = dict[tuple[str, int], int]


def parse_vector(token: str) -> Vector:
    """The offsets of a Kafka token; ``ValueError`` names what is malformed."""
    out: Vector = {}
    if not token:
        return out
    for part in token.split(";"):
        topic, sep, entries = part.partition(":")
        if not sep or not topic or not entries:
            raise ValueError(f"{token!r}: expected <topic>:<partition>=<offset>[,…] in {part!r}")
        for entry in entries.split(","):
            p, eq, o = entry.partition("=")
            if not eq or not p.isdigit() or not o.isdigit():
                raise ValueError(f"{token!r}: {entry!r} is not <partition>=<offset>")
            key = (topic, int(p))
            out[key] = max(out.get(key, -1), int(o))
    return out


def format_vector(vector: Vector) -> str:
    """The canonical token of ``vector`` (topics and partitions sorted)."""
    topics: dict[str, list[tuple[int, int]]] = {}
    for (topic, partition), offset in vector.items():
        topics.setdefault(topic, []).append((partition, offset))
    return ";".join(
        f"{topic}:" + ",".join(f"{p}={o}" for p, o in sorted(entries))
        for topic, entries in sorted(topics.items())
    )


def _merge(a: Vector, b: Vector) -> Vector:
    out = dict(a)
    for key, offset in b.items():
        if offset > out.get(key, -1):
            out[key] = offset
    return out


def later(a: str, b: str) -> str:
    """A token that is at or after both: max of integers, element-wise max of vectors.

    Tokens of different kinds (a client switched from an embedded server to a Kafka
    gateway) cannot be compared; the newer one, ``b``, wins.
    """
    if not a or not b:
        return a or b
    if a.isdigit() and b.isdigit():
        return a if int(a) >= int(b) else b
    if a.isdigit() or b.isdigit():
        return b
    try:
        return format_vector(_merge(parse_vector(a), parse_vector(b)))
    except ValueError:
        return b


def covers(reached: str, wanted: str) -> bool:
    """Whether a reader at ``reached`` has passed ``wanted`` (an empty ``wanted``: always)."""
    if not wanted:
        return True
    if not reached:
        return False
    if reached.isdigit() and wanted.isdigit():
        return int(reached) >= int(wanted)
    if reached.isdigit() or wanted.isdigit():
        raise ValueError(f"cannot compare position tokens {reached!r} and {wanted!r}")
    r = parse_vector(reached)
    return all(r.get(key, -1) >= offset for key, offset in parse_vector(wanted).items())


def compare(a: str, b: str) -> int | None:
    """-1, 0 or 1 when ``a`` is before, equal to or after ``b``; None when neither covers
    the other (vectors that each lead on some partition)."""
    ab, ba = covers(a, b), covers(b, a)
    if ab and ba:
        return 0
    if ab:
        return 1
    if ba:
        return -1
    return None
